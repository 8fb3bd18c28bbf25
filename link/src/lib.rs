//! placeholder, replaced by the link stage
