//! Figure 4, recovery: rings of 3, 5 and 9 lose one member at a time, every member in turn, to
//! SIGKILL (the kernel resets its links, so no timeout may be needed) or to SIGSTOP (silence:
//! only the token timeout finds it). Every member's writer client puts one value after another
//! (one outstanding, failing over through `ClusterClient`); a survivor's status is polled every
//! millisecond. Per trial we record the time from the signal until the survivor shows a primary
//! view without the victim (the view installation), and the longest time any writer went
//! without an acknowledged write around the fault (the client-observed write gap). Then the
//! victim comes back (restarted as a new incarnation, or SIGCONT), the full ring forms again and
//! the next member is the victim, so later trials meet links with every kind of dial history.
//!
//! The signal time is taken just before the signal is sent; for SIGSTOP that includes starting
//! the `kill` utility (about a millisecond), so the figures err on the slow side. Targets
//! (docs/PROTOCOL.md §2, §5.2, §8.2): kill -9 at most 50 ms to the view and 60 ms of write gap at
//! every n; SIGSTOP found within token_timeout + 50 ms.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::report::{percentile, Record};
use super::Plan;
use crate::client::{Client, ClusterClient, ClusterOptions};
use crate::ids::RingMode;

/// The ring sizes of this figure (the issue's).
pub const SIZES: [usize; 3] = [3, 5, 9];
/// Status poll interval.
const POLL: Duration = Duration::from_millis(1);
/// Most polls of one wait.
const POLLS_MAX: u32 = 200_000;
/// The gap window starts this long before the signal, so a write in flight at the signal counts.
const BEFORE: Duration = Duration::from_millis(100);
/// Load after the ring is whole again, before the next victim.
const SETTLE: Duration = Duration::from_millis(300);
/// Targets of the issue, in milliseconds.
const KILL_VIEW_TARGET_MS: f64 = 50.0;
const KILL_GAP_TARGET_MS: f64 = 60.0;
const STOP_SLACK_MS: f64 = 50.0;

/// How the victim fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9`: the process is gone and the kernel closes its sockets.
    Kill,
    /// `kill -STOP`: the process is silent with its sockets open.
    Stop,
}

impl Fault {
    /// The name in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "sigkill",
            Fault::Stop => "sigstop",
        }
    }
}

/// Every writer's acknowledgement times, appended by the writer threads.
struct Acks {
    times: Vec<Mutex<Vec<Instant>>>,
}

impl Acks {
    /// The longest time between consecutive acknowledgements of any writer inside
    /// `[from, until]`, counting `from` as an edge, with the writer and the end of that gap;
    /// `None` if a writer had no acknowledgement after `after`.
    fn gap(&self, from: Instant, after: Instant, until: Instant) -> Option<(Duration, usize, Instant)> {
        let mut longest = (Duration::ZERO, 0, from);
        for (writer, times) in self.times.iter().enumerate() {
            let times = times.lock().ok()?;
            if !times.iter().any(|&t| t > after) {
                return None;
            }
            let mut previous = from;
            for &t in times.iter().filter(|&&t| t > from && t <= until) {
                if t - previous > longest.0 {
                    longest = (t - previous, writer, t);
                }
                previous = t;
            }
        }
        Some(longest)
    }

    /// Whether every writer has an acknowledgement after `after`.
    fn all_after(&self, after: Instant) -> bool {
        self.times.iter().all(|times| times.lock().is_ok_and(|t| t.last().is_some_and(|&last| last > after)))
    }

    /// Forgets acknowledgements older than `before`, so the lists stay short.
    fn trim(&self, before: Instant) {
        for times in &self.times {
            if let Ok(mut times) = times.lock() {
                times.retain(|&t| t >= before);
            }
        }
    }
}

/// Measures `trials` recoveries from `fault` on a ring of `n`, victims in turn.
pub fn measure(
    exe: &std::path::Path,
    ring: RingMode,
    n: usize,
    fault: Fault,
    plan: &Plan,
) -> Result<Record, String> {
    let mut cluster = Cluster::start(exe, n, ring, Some(plan.token_timeout))?;
    cluster.wait_ready(plan.ready_deadline)?;
    let homes: Vec<usize> = (0..n).collect();
    let victims: Vec<usize> = (0..plan.recovery_trials).map(|trial| trial % n).collect();
    let (mut view_ms, mut gap_ms) = trials(&mut cluster, &homes, &victims, fault, plan)?;
    view_ms.sort_by(f64::total_cmp);
    gap_ms.sort_by(f64::total_cmp);
    let timeout_ms = plan.token_timeout.as_secs_f64() * 1e3;
    let view_max = view_ms.last().copied().unwrap_or(f64::NAN);
    let gap_max = gap_ms.last().copied().unwrap_or(f64::NAN);
    let (view_target, gap_target) = match fault {
        Fault::Kill => (KILL_VIEW_TARGET_MS, Some(KILL_GAP_TARGET_MS)),
        Fault::Stop => (timeout_ms + STOP_SLACK_MS, None),
    };
    let met = view_max <= view_target && gap_target.is_none_or(|target| gap_max <= target);
    let target = match gap_target {
        Some(gap) => {
            format!("view <= {view_target:.0}, gap <= {gap:.0}: {}", if met { "met" } else { "NOT met" })
        }
        None => format!("view <= {view_target:.0}: {}", if met { "met" } else { "NOT met" }),
    };
    Ok(Record::new("recovery")
        .int("n", n as u64)
        .text("ring", ring.as_str())
        .text("fault", fault.as_str())
        .int("token_timeout_ms", plan.token_timeout.as_millis() as u64)
        .int("trials", view_ms.len() as u64)
        .num("view_p50_ms", percentile(&view_ms, 0.5))
        .num("view_p99_ms", percentile(&view_ms, 0.99))
        .num("view_max_ms", view_max)
        .num("gap_p50_ms", percentile(&gap_ms, 0.5))
        .num("gap_p99_ms", percentile(&gap_ms, 0.99))
        .num("gap_max_ms", gap_max)
        .text("target_ms", &target))
}

/// Fails each of `victims` in turn (0-based member indexes) while one writer per index in
/// `homes` puts through a client that starts at that member; the time to the view without the
/// victim and the longest write gap of each trial, in milliseconds. The ring must be ready and
/// is ready again when this returns.
pub fn trials(
    cluster: &mut Cluster,
    homes: &[usize],
    victims: &[usize],
    fault: Fault,
    plan: &Plan,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let acks = Acks { times: homes.iter().map(|_| Mutex::new(Vec::new())).collect() };
    let stop = AtomicBool::new(false);
    let addrs = cluster.addrs.clone();
    let (mut view_ms, mut gap_ms) = (Vec::new(), Vec::new());
    let outcome = std::thread::scope(|scope| {
        for (writer, &home) in homes.iter().enumerate() {
            let (acks, stop, addrs) = (&acks, &stop, &addrs);
            scope.spawn(move || {
                write_until_stopped(home, addrs, plan.token_timeout, &acks.times[writer], stop)
            });
        }
        let result = (|| {
            for &victim in victims {
                let (view, gap) = one_trial(cluster, &acks, victim, fault, plan)?;
                view_ms.push(view.as_secs_f64() * 1e3);
                gap_ms.push(gap.as_secs_f64() * 1e3);
            }
            Ok::<(), String>(())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    });
    outcome.map(|()| (view_ms, gap_ms))
}

/// One writer: puts to its own key through a client that starts at member `home`, recording
/// the time of every acknowledgement, until `stop`. Failures are retried: the client fails over.
fn write_until_stopped(
    home: usize,
    addrs: &[SocketAddr],
    token_timeout: Duration,
    acks: &Mutex<Vec<Instant>>,
    stop: &AtomicBool,
) {
    let mut order: Vec<SocketAddr> = addrs[home..].to_vec();
    order.extend_from_slice(&addrs[..home]);
    // A request to a paused member is given up after one token timeout, as the members do.
    let options = ClusterOptions {
        request_timeout: token_timeout,
        deadline: token_timeout * 20,
        auth: None,
        ..ClusterOptions::default()
    };
    let Ok(mut client) = ClusterClient::new(&order, options) else { return };
    let key = format!("bench/recovery/{home}");
    let mut counter: u64 = 0;
    // Bounded by the stop flag, which the measuring thread sets when it is done or fails.
    while !stop.load(Ordering::Relaxed) {
        counter += 1;
        if client.put(key.as_bytes(), &counter.to_le_bytes()).is_ok() {
            if let Ok(mut acks) = acks.lock() {
                acks.push(Instant::now());
            }
        }
    }
}

/// Fails `victim`, times the view and the write gap, and brings the victim back.
fn one_trial(
    cluster: &mut Cluster,
    acks: &Acks,
    victim: usize,
    fault: Fault,
    plan: &Plan,
) -> Result<(Duration, Duration), String> {
    let n = cluster.addrs.len();
    let watcher = (victim + 1) % n;
    let allowance = plan.token_timeout * 10 + Duration::from_secs(10);
    let mut poller =
        Client::connect(cluster.addrs[watcher], Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let before = poller.status().map_err(|e| e.to_string())?;
    std::thread::sleep(SETTLE);
    acks.trim(Instant::now() - BEFORE * 2);
    let signalled = Instant::now();
    match fault {
        Fault::Kill => cluster.kill(victim),
        Fault::Stop => cluster.signal(victim, "STOP")?,
    }
    let victim_id = u16::try_from(victim + 1).unwrap_or(u16::MAX);
    let mut view = None;
    for _ in 0..POLLS_MAX {
        let status = poller.status().map_err(|e| e.to_string())?;
        if status.view > before.view && status.primary && status.ring.iter().all(|m| m.id.0 != victim_id) {
            view = Some(signalled.elapsed());
            break;
        }
        if signalled.elapsed() >= allowance {
            break;
        }
        std::thread::sleep(POLL);
    }
    let view =
        view.ok_or(format!("no view without n{} within {allowance:?} of {}", victim + 1, fault.as_str()))?;
    let installed = signalled + view;
    // Every writer must have written again after the new view: the gap ends there.
    let mut waited = 0;
    while !acks.all_after(installed) {
        if signalled.elapsed() >= allowance || waited >= POLLS_MAX {
            return Err(format!("a writer did not write again within {allowance:?} of {}", fault.as_str()));
        }
        waited += 1;
        std::thread::sleep(POLL);
    }
    let (gap, writer, ended) = acks
        .gap(signalled - BEFORE, installed, Instant::now())
        .ok_or("a writer lost its acknowledgements".to_string())?;
    log::debug!(
        "recovery n={n} {}: victim n{} view {view:?}; longest gap {gap:?} at the writer homed at n{}, \
         ending {:?} after the signal",
        fault.as_str(),
        victim + 1,
        writer + 1,
        ended.saturating_duration_since(signalled)
    );
    match fault {
        Fault::Kill => cluster.restart(victim)?,
        Fault::Stop => cluster.signal(victim, "CONT")?,
    }
    cluster.wait_ready(plan.ready_deadline)?;
    Ok((view, gap))
}
