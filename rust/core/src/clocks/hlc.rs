//! Hybrid logical clocks (Kulkarni, Demirbas, Madeppa, Avva, Leone, 2014).
//!
//! A timestamp is one `u64`: the high 48 bits are `l`, milliseconds since the Unix epoch (enough
//! until the year 10889), the low 16 bits are the logical counter `c`. Comparing the integers
//! compares `(l, c)` lexicographically, which is the HLC order.
//!
//! With this packing the paper's rules collapse into integer arithmetic:
//! - send or local event: `if pt > l { pack(pt, 0) } else { ts + 1 }`;
//! - receive `m`: `if pt > max(l, l_m) { pack(pt, 0) } else { max(ts, ts_m) + 1 }`.
//!
//! When `c` would pass 65535 the `+ 1` carries into `l`: the clock moves one millisecond ahead
//! of physical time instead of failing. The clock is sans-IO: callers pass the physical time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 16;
/// Largest logical counter.
pub const MAX_LOGICAL: u64 = (1 << LOGICAL_BITS) - 1;
/// Largest physical part, in ms since the Unix epoch.
pub const MAX_WALL_MS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;

const NS_PER_MS: u64 = 1_000_000;

/// An HLC timestamp: `(l, c)` packed into a sortable `u64`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp `(wall_ms, logical)`.
    pub fn new(wall_ms: u64, logical: u64) -> Result<Timestamp> {
        if wall_ms > MAX_WALL_MS {
            return Err(Error::CounterOverflow(format!(
                "wall time {wall_ms} ms is past the largest HLC time {MAX_WALL_MS} ms"
            )));
        }
        if logical > MAX_LOGICAL {
            return Err(Error::CounterOverflow(format!(
                "logical counter {logical} is past {MAX_LOGICAL}"
            )));
        }
        Ok(Timestamp((wall_ms << LOGICAL_BITS) | logical))
    }

    /// Milliseconds since the Unix epoch (`l`).
    pub fn wall_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter (`c`).
    pub fn logical(self) -> u64 {
        self.0 & MAX_LOGICAL
    }

    /// Big-endian bytes: byte order is timestamp order.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Inverse of [`Timestamp::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Timestamp> {
        let arr: [u8; 8] = b.try_into().map_err(|_| {
            Error::Decode(format!(
                "an HLC timestamp is 8 bytes, got {} bytes",
                b.len()
            ))
        })?;
        Ok(Timestamp(u64::from_be_bytes(arr)))
    }

    /// Parses [`Timestamp`]'s `Display` form, `YYYY-MM-DDTHH:MM:SS.mmmZ/ccccc`.
    pub fn parse(s: &str) -> Result<Timestamp> {
        let bad = || {
            Error::Decode(format!(
                "not an HLC timestamp (want YYYY-MM-DDTHH:MM:SS.mmmZ/ccccc): {s:?}"
            ))
        };
        let b = s.as_bytes();
        if b.len() != 30
            || [b[4], b[7], b[10], b[13], b[16], b[19], b[23], b[24]]
                != [b'-', b'-', b'T', b':', b':', b'.', b'Z', b'/']
        {
            return Err(bad());
        }
        let num = |from: usize, to: usize| -> Result<u64> {
            let part = &b[from..to];
            if !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(part
                .iter()
                .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0')))
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second, milli) =
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        let logical = num(25, 30)?;
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return Err(bad());
        }
        let days = days_from_civil(year, month, day);
        let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli;
        Timestamp::new(ms, logical).map_err(|_| bad())
    }
}

impl fmt::Display for Timestamp {
    /// ISO 8601 UTC with milliseconds, then `/` and the counter on 5 digits: fixed width, so
    /// strings sort like timestamps (for years up to 9999).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.wall_ms();
        let (days, in_day) = (ms / 86_400_000, ms % 86_400_000);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z/{:05}",
            in_day / 3_600_000,
            in_day / 60_000 % 60,
            in_day / 1000 % 60,
            in_day % 1000,
            self.logical()
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (year >= 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    // Count from 0000-03-01 so the leap day ends each 4-year cycle.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A hybrid logical clock; `now` and `update` are lock-free and linearizable, so threads sharing
/// one clock never get the same or a smaller timestamp.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    max_offset_ms: u64,
}

impl Hlc {
    /// A clock that refuses remote timestamps more than `max_offset_ms` ahead of physical time.
    pub fn new(max_offset_ms: u64) -> Hlc {
        Hlc::starting_at(Timestamp(0), max_offset_ms)
    }

    /// A clock whose next timestamp is after `last` (to resume after a restart).
    pub fn starting_at(last: Timestamp, max_offset_ms: u64) -> Hlc {
        Hlc {
            last: AtomicU64::new(last.0),
            max_offset_ms,
        }
    }

    /// The configured bound on how far ahead a remote timestamp may be, in ms.
    pub fn max_offset_ms(&self) -> u64 {
        self.max_offset_ms
    }

    /// The last timestamp issued or witnessed.
    pub fn last(&self) -> Timestamp {
        Timestamp(self.last.load(Ordering::Acquire))
    }

    /// A send or local event at physical time `pt_ns` (ns since the Unix epoch).
    pub fn now(&self, pt_ns: u64) -> Result<Timestamp> {
        let pt = physical_ms(pt_ns)?;
        self.advance(|last| {
            if pt > last >> LOGICAL_BITS {
                Some(pt << LOGICAL_BITS)
            } else {
                last.checked_add(1)
            }
        })
    }

    /// A receive event of `remote` at physical time `pt_ns`. Fails with [`Error::ClockSkew`],
    /// leaving the clock unchanged, if `remote` is more than `max_offset` ahead of `pt_ns`.
    pub fn update(&self, remote: Timestamp, pt_ns: u64) -> Result<Timestamp> {
        let pt = physical_ms(pt_ns)?;
        let ahead = remote.wall_ms().saturating_sub(pt);
        if ahead > self.max_offset_ms {
            return Err(Error::ClockSkew {
                ahead_ns: ahead.saturating_mul(NS_PER_MS),
                max_offset_ns: self.max_offset_ms.saturating_mul(NS_PER_MS),
            });
        }
        self.advance(|last| {
            if pt > (last >> LOGICAL_BITS).max(remote.wall_ms()) {
                Some(pt << LOGICAL_BITS)
            } else {
                last.max(remote.0).checked_add(1)
            }
        })
    }

    fn advance(&self, next: impl Fn(u64) -> Option<u64>) -> Result<Timestamp> {
        let mut last = self.last.load(Ordering::Acquire);
        loop {
            let new = next(last).ok_or_else(|| {
                Error::CounterOverflow("the HLC is at its largest timestamp".into())
            })?;
            match self
                .last
                .compare_exchange_weak(last, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(Timestamp(new)),
                Err(seen) => last = seen,
            }
        }
    }
}

fn physical_ms(pt_ns: u64) -> Result<u64> {
    let ms = pt_ns / NS_PER_MS;
    if ms > MAX_WALL_MS {
        return Err(Error::InvalidArgument(format!(
            "physical time {pt_ns} ns is past the largest HLC time"
        )));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NS_PER_MS;

    #[test]
    fn send_and_receive_rules() {
        let c = Hlc::new(500);
        let t1 = c.now(1000 * MS).unwrap();
        assert_eq!((t1.wall_ms(), t1.logical()), (1000, 0));
        // Same ms, and a wall clock that went backwards: counter ticks.
        assert_eq!(c.now(1000 * MS).unwrap().logical(), 1);
        assert_eq!(c.now(900 * MS).unwrap(), Timestamp::new(1000, 2).unwrap());
        // Remote ahead within max_offset: adopt its l, c_m + 1.
        let r = Timestamp::new(1200, 7).unwrap();
        assert_eq!(
            c.update(r, 1000 * MS).unwrap(),
            Timestamp::new(1200, 8).unwrap()
        );
        // Physical time passes everything: reset counter.
        assert_eq!(
            c.update(r, 1300 * MS).unwrap(),
            Timestamp::new(1300, 0).unwrap()
        );
    }

    #[test]
    fn skew_refused_without_change() {
        let c = Hlc::new(500);
        let before = c.now(1000 * MS).unwrap();
        let far = Timestamp::new(1501, 0).unwrap();
        assert!(matches!(
            c.update(far, 1000 * MS),
            Err(Error::ClockSkew { .. })
        ));
        assert_eq!(c.last(), before);
        assert!(c
            .update(Timestamp::new(1500, 0).unwrap(), 1000 * MS)
            .is_ok());
    }

    #[test]
    fn counter_overflow_carries_into_wall_time() {
        let c = Hlc::starting_at(Timestamp::new(1000, MAX_LOGICAL).unwrap(), 500);
        assert_eq!(c.now(1000 * MS).unwrap(), Timestamp::new(1001, 0).unwrap());
        let top = Hlc::starting_at(Timestamp(u64::MAX), 500);
        assert!(matches!(top.now(0), Err(Error::CounterOverflow(_))));
    }

    #[test]
    fn text_form_round_trips() {
        let t = Timestamp::new(1_764_369_601_123, 42).unwrap();
        assert_eq!(t.to_string(), "2025-11-28T22:40:01.123Z/00042");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        for ms in [0, 951_782_400_000, 4_107_542_399_999, 253_402_300_799_999] {
            let t = Timestamp::new(ms, 65535).unwrap();
            assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t, "{t}");
        }
        for bad in [
            "",
            "2025-02-29T00:00:00.000Z/00000",
            "2025-11-28T24:00:00.000Z/00000",
            "2025-11-28T22:40:01.123Z/65536",
            "2025-11-28 22:40:01.123Z/00042",
            "1969-12-31T23:59:59.999Z/00000",
            "2025-11-28T22:40:01.12xZ/00042",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Timestamp::from_bytes(&t.to_bytes()).unwrap(), t);
        assert!(Timestamp::from_bytes(&[0; 7]).is_err());
    }

    #[test]
    fn many_threads_never_repeat() {
        let c = Hlc::new(500);
        let all: Vec<Vec<u64>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..20_000u64)
                            .map(|i| c.now(1000 * MS + i / 1000 * MS).unwrap().0)
                            .collect()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for per_thread in &all {
            assert!(per_thread.windows(2).all(|w| w[0] < w[1]));
        }
        let mut flat: Vec<u64> = all.into_iter().flatten().collect();
        flat.sort_unstable();
        flat.dedup();
        assert_eq!(flat.len(), 80_000);
    }
}
