//! Random values: a seeded generator (SplitMix64) with a bias towards edge
//! cases, and the scalar parts of value generation.

use componentize_testkit::fuzz::SplitMix64;

/// The testkit's SplitMix64, with the draws value generation needs.
pub struct Rng(SplitMix64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(SplitMix64(seed ^ 0x6a09_e667_f3bc_c908))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// An integer of `bits` bits (as the low bits of a u64): an edge value a
    /// third of the time, else uniform or small.
    fn int_bits(&mut self, bits: u32, signed: bool) -> u64 {
        let mask = if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let (min, max) = if signed {
            (1u64 << (bits - 1), mask >> 1)
        } else {
            (0, mask)
        };
        match self.below(9) {
            0 => min,
            1 => max,
            2 => 0,
            3 => mask, // -1 when signed
            4 => 1,
            5 => max.wrapping_sub(1) & mask,
            6 => self.below(256) & mask,
            _ => self.next_u64() & mask,
        }
    }

    pub fn u8(&mut self) -> u8 {
        self.int_bits(8, false) as u8
    }
    pub fn s8(&mut self) -> i8 {
        self.int_bits(8, true) as u8 as i8
    }
    pub fn u16(&mut self) -> u16 {
        self.int_bits(16, false) as u16
    }
    pub fn s16(&mut self) -> i16 {
        self.int_bits(16, true) as u16 as i16
    }
    pub fn u32(&mut self) -> u32 {
        self.int_bits(32, false) as u32
    }
    pub fn s32(&mut self) -> i32 {
        self.int_bits(32, true) as u32 as i32
    }
    pub fn u64(&mut self) -> u64 {
        self.int_bits(64, false)
    }
    pub fn s64(&mut self) -> i64 {
        self.int_bits(64, true) as i64
    }

    /// Any f32 bit pattern, with NaNs (quiet, signalling, with payloads and
    /// sign), infinities, zeros and subnormals often.
    pub fn f32(&mut self) -> f32 {
        const SPECIAL: &[u32] = &[
            0x7fc0_0000, // canonical NaN
            0xffc0_0000, // negative NaN
            0x7f80_0001, // signalling NaN, payload 1
            0x7fa5_5a5a, // signalling NaN with payload
            0x7fff_ffff, // quiet NaN, all payload bits
            0xffff_fffe,
            0x7f80_0000, // +inf
            0xff80_0000, // -inf
            0x0000_0000,
            0x8000_0000, // -0
            0x0000_0001, // smallest subnormal
            0x807f_ffff, // largest negative subnormal
            0x7f7f_ffff, // max
            0x3f80_0000, // 1.0
        ];
        if self.chance(1, 2) {
            f32::from_bits(self.pick(SPECIAL))
        } else {
            f32::from_bits(self.next_u64() as u32)
        }
    }

    pub fn f64(&mut self) -> f64 {
        const SPECIAL: &[u64] = &[
            0x7ff8_0000_0000_0000,
            0xfff8_0000_0000_0000,
            0x7ff0_0000_0000_0001,
            0x7ff4_dead_beef_0001,
            0x7fff_ffff_ffff_ffff,
            0xffff_ffff_ffff_fffe,
            0x7ff0_0000_0000_0000,
            0xfff0_0000_0000_0000,
            0x0000_0000_0000_0000,
            0x8000_0000_0000_0000,
            0x0000_0000_0000_0001,
            0x800f_ffff_ffff_ffff,
            0x7fef_ffff_ffff_ffff,
            0x3ff0_0000_0000_0000,
        ];
        if self.chance(1, 2) {
            f64::from_bits(self.pick(SPECIAL))
        } else {
            f64::from_bits(self.next_u64())
        }
    }

    /// Any Unicode scalar value; the edges of each UTF-8 length and around
    /// the surrogates often.
    pub fn char(&mut self) -> char {
        const EDGES: &[u32] = &[
            0, 1, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x1_0000, 0x10_ffff,
        ];
        let c = match self.below(4) {
            0 => self.pick(EDGES),
            1 => 0x20 + self.below(0x5f) as u32,
            _ => {
                let c = self.below(0x11_0000 - 0x800) as u32;
                if c >= 0xd800 { c + 0x800 } else { c }
            }
        };
        char::from_u32(c).unwrap()
    }

    /// A string of up to `max` characters, mostly ASCII with some 2-, 3- and
    /// 4-byte characters.
    pub fn string(&mut self, max: usize) -> String {
        let len = match self.below(8) {
            0 => 0,
            1 => max,
            _ => self.index(max + 1),
        };
        let flavour = self.below(4);
        (0..len)
            .map(|_| match (flavour, self.below(10)) {
                (0, _) | (_, 0..=5) => (b'a' + self.below(26) as u8) as char,
                (_, 6) => self.pick(&['é', 'ß', 'Ω', 'ж']),
                (_, 7) => self.pick(&['€', '中', '\u{fffd}', '\u{d7ff}', '\u{e000}']),
                (_, 8) => self.pick(&['😀', '\u{10000}', '\u{10ffff}']),
                _ => self.char(),
            })
            .collect()
    }
}
