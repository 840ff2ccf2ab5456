//! How a node's two threads wait for work: the idle strategy (DESIGN.md, shape: the event loop
//! and the protocol thread). A thread with nothing to do spins for a bounded time, then yields
//! its core for a bounded time, then parks (blocks in `epoll_wait` or on the channel), as Aeron's
//! `BackoffIdleStrategy` does. Spinning saves the wake-up of a parked thread (a futex or eventfd
//! write and a context switch, tens of microseconds on a loaded host) when work comes soon after
//! the last; it costs a core while it lasts, so both phases are short and settable per node
//! (`harness node --idle`), and `park` turns them off.

use std::fmt;
use std::time::{Duration, Instant};

/// The longest spin or yield phase a node accepts: beyond it a thread would burn a core between
/// token visits of an idle ring.
pub const PHASE_MAX: Duration = Duration::from_millis(10);

/// How long a thread spins, then yields, before it parks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleStrategy {
    /// Busy-polling for work, without giving up the core.
    pub spin: Duration,
    /// Polling for work, yielding the core between looks.
    pub yield_for: Duration,
}

/// What a waiting thread does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Look again at once.
    Spin,
    /// Yield the core, then look again.
    Yield,
    /// Block until woken (or a deadline).
    Park,
}

impl IdleStrategy {
    /// Park at once: the least CPU, every wake-up a context switch.
    pub const PARK: IdleStrategy = IdleStrategy { spin: Duration::ZERO, yield_for: Duration::ZERO };

    /// The default, chosen by measurement (docs/PERFORMANCE.md, the idle strategy).
    pub const DEFAULT: IdleStrategy = IdleStrategy::PARK;

    /// What a thread that has waited `waited` since its last work does next.
    pub fn phase(&self, waited: Duration) -> Phase {
        if waited < self.spin {
            Phase::Spin
        } else if waited < self.spin + self.yield_for {
            Phase::Yield
        } else {
            Phase::Park
        }
    }

    /// Whether the thread parks at once.
    pub fn parks_at_once(&self) -> bool {
        self.spin.is_zero() && self.yield_for.is_zero()
    }

    /// Looks for work with `look` until it finds some (`Some`), `deadline` passes or the phases
    /// end (`None`: the caller parks until `deadline`). Bounded by `spin + yield_for`.
    pub fn wait_for<T>(&self, deadline: Instant, mut look: impl FnMut() -> Option<T>) -> Option<T> {
        if self.parks_at_once() {
            return None;
        }
        let started = Instant::now();
        loop {
            if let Some(found) = look() {
                return Some(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.phase(now - started) {
                Phase::Spin => std::hint::spin_loop(),
                Phase::Yield => std::thread::yield_now(),
                Phase::Park => return None,
            }
        }
    }
}

impl Default for IdleStrategy {
    fn default() -> IdleStrategy {
        IdleStrategy::DEFAULT
    }
}

impl fmt::Display for IdleStrategy {
    /// The flag's spelling: `park`, or `SPIN,YIELD` in microseconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parks_at_once() {
            write!(f, "park")
        } else {
            write!(f, "{},{}", self.spin.as_micros(), self.yield_for.as_micros())
        }
    }
}

impl std::str::FromStr for IdleStrategy {
    type Err = String;

    /// `park`, or `SPIN,YIELD`: microseconds of spinning, then of yielding, each at most
    /// `PHASE_MAX`.
    fn from_str(text: &str) -> Result<IdleStrategy, String> {
        if text == "park" {
            return Ok(IdleStrategy::PARK);
        }
        let usage =
            || format!("must be park or SPIN,YIELD in microseconds (each at most {})", PHASE_MAX.as_micros());
        let (spin, yield_for) = text.split_once(',').ok_or_else(usage)?;
        let micros = |part: &str| -> Result<Duration, String> {
            let us: u64 = part.trim().parse().map_err(|_| usage())?;
            let phase = Duration::from_micros(us);
            if phase > PHASE_MAX {
                return Err(usage());
            }
            Ok(phase)
        };
        Ok(IdleStrategy { spin: micros(spin)?, yield_for: micros(yield_for)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_parses_and_prints_back() {
        assert_eq!("park".parse::<IdleStrategy>(), Ok(IdleStrategy::PARK));
        let s: IdleStrategy = "20,100".parse().unwrap();
        assert_eq!(
            s,
            IdleStrategy { spin: Duration::from_micros(20), yield_for: Duration::from_micros(100) }
        );
        assert_eq!(s.to_string(), "20,100");
        assert_eq!("0,0".parse::<IdleStrategy>(), Ok(IdleStrategy::PARK));
        assert_eq!(IdleStrategy::PARK.to_string(), "park");
        for bad in ["", "spin", "20", "20,", "-1,5", "20,100,3", "10001,0", "0,10001"] {
            let e = bad.parse::<IdleStrategy>().unwrap_err();
            assert!(e.starts_with("must be park or SPIN,YIELD"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_phases_follow_each_other() {
        let s = IdleStrategy { spin: Duration::from_micros(20), yield_for: Duration::from_micros(100) };
        assert_eq!(s.phase(Duration::ZERO), Phase::Spin);
        assert_eq!(s.phase(Duration::from_micros(19)), Phase::Spin);
        assert_eq!(s.phase(Duration::from_micros(20)), Phase::Yield);
        assert_eq!(s.phase(Duration::from_micros(119)), Phase::Yield);
        assert_eq!(s.phase(Duration::from_micros(120)), Phase::Park);
        assert_eq!(IdleStrategy::PARK.phase(Duration::ZERO), Phase::Park);
    }

    #[test]
    fn waiting_finds_work_or_gives_up_when_the_phases_end() {
        let far = Instant::now() + Duration::from_secs(60);
        // Parking at once never looks.
        let mut looks = 0;
        assert_eq!(
            IdleStrategy::PARK.wait_for(far, || -> Option<()> {
                looks += 1;
                None
            }),
            None
        );
        assert_eq!(looks, 0);
        // Work found on the third look.
        let s = IdleStrategy { spin: Duration::from_millis(5), yield_for: Duration::from_millis(5) };
        let mut looks = 0;
        let found = s.wait_for(far, || {
            looks += 1;
            (looks == 3).then_some(7)
        });
        assert_eq!(found, Some(7));
        // No work: it gives up once the phases end (and looked more than once).
        let started = Instant::now();
        let mut looks = 0u64;
        assert_eq!(
            s.wait_for(far, || -> Option<()> {
                looks += 1;
                None
            }),
            None
        );
        assert!(started.elapsed() >= Duration::from_millis(10) && looks > 1);
        // A deadline before the phases end stops it too.
        let soon = Instant::now();
        assert_eq!(s.wait_for(soon, || -> Option<()> { None }), None);
    }
}
