pub mod decode;
pub mod worlds;
