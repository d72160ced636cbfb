//! The relay's clock. The core keeps absolute deadlines in 64-bit milliseconds; nginx's
//! `ngx_current_msec` is an `ngx_msec_t`, 32 bits wide on 32-bit systems, where it wraps
//! every 49.7 days (nginx's own timers compare by signed difference and do not mind). A
//! session across the wrap would otherwise see every deadline 49 days away.

use super::core::Msec;

/// Counts on in 64 bits from a counter of `bits` bits that wraps.
pub struct Clock {
    mask: u64,
    last: Option<(u64, Msec)>,
}

impl Clock {
    pub const fn new(bits: u32) -> Clock {
        Clock {
            mask: if bits >= 64 {
                u64::MAX
            } else {
                (1 << bits) - 1
            },
            last: None,
        }
    }

    /// The time now, from the counter's reading `raw` (never going back).
    pub fn at(&mut self, raw: u64) -> Msec {
        let now = match self.last {
            Some((last, t)) => t.saturating_add(raw.wrapping_sub(last) & self.mask),
            None => raw & self.mask,
        };
        self.last = Some((raw, now));
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_on_across_a_32_bit_wrap() {
        let mut c = Clock::new(32);
        assert_eq!(c.at(0xffff_ff00), 0xffff_ff00);
        assert_eq!(c.at(0xffff_ff00), 0xffff_ff00);
        assert_eq!(c.at(0x10), 0x1_0000_0010);
        assert_eq!(c.at(0x20), 0x1_0000_0020);
    }

    #[test]
    fn a_64_bit_counter_is_taken_as_it_is() {
        let mut c = Clock::new(64);
        assert_eq!(c.at(5), 5);
        assert_eq!(c.at(1 << 40), 1 << 40);
    }
}
