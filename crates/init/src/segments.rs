//! How a memory image becomes active data segments.
//!
//! The rule (documented in the README):
//! 1. Take the maximal runs of non-zero bytes; zero bytes are never stored
//!    on their own, because a fresh memory is zero.
//! 2. Join two neighbouring runs when at most [`MERGE_GAP`] zero bytes
//!    separate them: an active segment costs about 8 bytes of header (flags,
//!    `i32.const` offset, end, length), so storing a short gap is cheaper than
//!    starting a new segment.
//! 3. If more than [`MAX_SEGMENTS`] segments remain, join across the smallest
//!    gaps (the lower address first on ties) until exactly [`MAX_SEGMENTS`]
//!    remain. Engines and tools limit the segment count (wasmparser: 100 000
//!    per module), and the memory's segments share the module's data section
//!    with its original ones.
//!
//! The result depends only on the bytes, so the same image always gives the
//! same segments.

use std::ops::Range;

/// Zero gaps of at most this many bytes are stored inside a segment.
pub const MERGE_GAP: usize = 8;

/// The most segments one memory gets.
pub const MAX_SEGMENTS: usize = 10_000;

/// The segments (byte ranges) that hold every non-zero byte of `image`.
pub fn segments(image: &[u8]) -> Vec<Range<usize>> {
    segments_with(image, MERGE_GAP, MAX_SEGMENTS)
}

pub(crate) fn segments_with(image: &[u8], merge_gap: usize, max: usize) -> Vec<Range<usize>> {
    let max = max.max(1);
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut i = 0;
    let n = image.len();
    while i < n {
        // Skip zeros, eight bytes at a time where aligned chunks allow.
        while i < n && image[i] == 0 {
            if i % 8 == 0 && i + 8 <= n && image[i..i + 8] == [0; 8] {
                i += 8;
            } else {
                i += 1;
            }
        }
        if i >= n {
            break;
        }
        let start = i;
        while i < n && image[i] != 0 {
            i += 1;
        }
        match runs.last_mut() {
            Some(last) if start - last.end <= merge_gap => last.end = i,
            _ => runs.push(start..i),
        }
    }
    if runs.len() <= max {
        return runs;
    }
    // Join across the smallest gaps. Gap k separates runs k and k + 1.
    let mut gaps: Vec<(usize, usize)> = runs
        .windows(2)
        .enumerate()
        .map(|(k, w)| (w[1].start - w[0].end, k))
        .collect();
    gaps.sort_unstable();
    let mut join = vec![false; runs.len()];
    for &(_, k) in &gaps[..runs.len() - max] {
        join[k] = true;
    }
    let mut out: Vec<Range<usize>> = Vec::with_capacity(max);
    let mut joining = false;
    for (k, run) in runs.into_iter().enumerate() {
        if joining && let Some(last) = out.last_mut() {
            last.end = run.end;
        } else {
            out.push(run);
        }
        joining = join[k];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_gaps() {
        let mut image = vec![0u8; 100];
        image[3] = 1;
        image[4] = 2;
        image[10] = 3; // gap of 5 zeros: joined
        image[40] = 4; // gap of 29: new segment
        image[99] = 5;
        assert_eq!(segments(&image), vec![3..11, 40..41, 99..100]);
        assert!(segments(&[0; 64]).is_empty());
        assert_eq!(segments(&[7]), vec![0..1]);
    }

    #[test]
    fn cap_joins_smallest_gaps_first() {
        let mut image = vec![0u8; 200];
        for at in [0, 20, 30, 100, 150] {
            image[at] = 1;
        }
        // Gaps: 19, 9, 69, 49. With room for 3 segments, 9 and 19 are joined.
        assert_eq!(segments_with(&image, 4, 3), vec![0..31, 100..101, 150..151]);
        assert_eq!(segments_with(&image, 4, 1), vec![0..151]);
        // Every non-zero byte is covered, deterministically.
        let a = segments_with(&image, 4, 2);
        assert_eq!(a, segments_with(&image, 4, 2));
        assert_eq!(a, vec![0..31, 100..151]);
    }
}
