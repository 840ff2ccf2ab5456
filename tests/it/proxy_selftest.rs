//! The fault-injecting proxy's own behaviour (tests/it/support/proxy.rs), against a loopback echo
//! server, with harness-shaped frames: every mode does what the link-fault tests rely on.

use crate::proxy;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use proxy::{Dir, Mode, Proxy};

/// How often the echo server looks at its stop flag.
const POLL: Duration = Duration::from_millis(5);
/// An echo server that lives until the test ends: one thread per connection, each bounded
/// by a read timeout and the `stop` flag.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut workers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut s, _)) => {
                            let stop = stop.clone();
                            workers.push(std::thread::spawn(move || {
                                s.set_nonblocking(false).unwrap();
                                s.set_read_timeout(Some(POLL)).unwrap();
                                let mut buf = [0u8; 4096];
                                while !stop.load(Ordering::SeqCst) {
                                    match s.read(&mut buf) {
                                        Ok(0) => break,
                                        Ok(n) => {
                                            if s.write_all(&buf[..n]).is_err() {
                                                break;
                                            }
                                        }
                                        Err(e)
                                            if e.kind() == ErrorKind::WouldBlock
                                                || e.kind() == ErrorKind::TimedOut => {}
                                        Err(_) => break,
                                    }
                                }
                            }));
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
                for w in workers {
                    let _ = w.join();
                }
            })
        };
        Echo { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.take().unwrap().join();
    }
}

/// A frame with the harness length prefix and `body` after it.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn dial(proxy: &Proxy) -> TcpStream {
    let s = TcpStream::connect(proxy.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    s
}

/// Reads exactly `n` bytes or fails within the read timeout.
fn read_n(s: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out)?;
    Ok(out)
}

#[test]
fn pass_forwards_both_ways() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    let f = frame(b"hello ring");
    s.write_all(&f).unwrap();
    assert_eq!(read_n(&mut s, f.len()).unwrap(), f);
    assert_eq!(proxy.accepted(), 1);
}

#[test]
fn blackhole_drops_bytes_but_keeps_the_connection() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    proxy.set_mode(Dir::ToDialer, Mode::Blackhole);
    s.write_all(&frame(b"lost")).unwrap();
    assert!(read_n(&mut s, 8).is_err(), "nothing comes back through a blackhole");
    // The connection is still open: healed, the next frame passes on it.
    proxy.heal();
    let f = frame(b"after");
    s.write_all(&f).unwrap();
    assert_eq!(read_n(&mut s, f.len()).unwrap(), f);
}

#[test]
fn one_way_cut_drops_one_direction_only() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    // Cut towards the target: the echo never sees it, so nothing returns either.
    proxy.set_mode(Dir::ToTarget, Mode::Blackhole);
    s.write_all(&frame(b"x")).unwrap();
    assert!(read_n(&mut s, 5).is_err());
    proxy.heal();
    let f = frame(b"y");
    s.write_all(&f).unwrap();
    assert_eq!(read_n(&mut s, f.len()).unwrap(), f);
}

#[test]
fn reset_closes_both_sides_and_refuse_closes_new_connections() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    s.write_all(&frame(b"a")).unwrap();
    read_n(&mut s, 5).unwrap();
    proxy.reset();
    let mut buf = [0u8; 1];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "reset closes the dialer side");
    proxy.refuse(true);
    let mut s = dial(&proxy);
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "a refused connection is closed");
    proxy.refuse(false);
    let mut s = dial(&proxy);
    s.write_all(&frame(b"b")).unwrap();
    assert_eq!(read_n(&mut s, 5).unwrap(), frame(b"b"));
}

#[test]
fn delay_holds_bytes_in_order() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    proxy.set_mode(Dir::ToTarget, Mode::Delay(Duration::from_millis(200)));
    let started = Instant::now();
    s.write_all(&frame(b"one")).unwrap();
    s.write_all(&frame(b"two")).unwrap();
    let got = read_n(&mut s, 14).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(190), "held {:?}", started.elapsed());
    assert_eq!(got, [frame(b"one"), frame(b"two")].concat());
}

#[test]
fn flip_corrupts_body_bytes_but_never_a_length_prefix() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut s = dial(&proxy);
    proxy.flip(Dir::ToTarget, 2);
    let f = frame(&[0u8; 6]);
    s.write_all(&f).unwrap();
    let got = read_n(&mut s, f.len()).unwrap();
    assert_eq!(&got[..4], &f[..4], "the prefix is intact");
    assert_eq!(&got[4..], &[0x10, 0x10, 0, 0, 0, 0], "exactly the next two body bytes flipped");
    assert_eq!(proxy.flipped(Dir::ToTarget), 2);
    // Spent: the next frame passes clean.
    s.write_all(&f).unwrap();
    assert_eq!(read_n(&mut s, f.len()).unwrap(), f);
}

#[test]
fn replay_resends_a_recorded_frame_on_a_new_connection() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let mut first = dial(&proxy);
    // Frames of another kind are not recorded: body = version 1, kind, rest.
    proxy.record(Dir::ToTarget, 5);
    let small = frame(b"\x01\x04token");
    let big = frame(b"\x01\x05old-data");
    first.write_all(&small).unwrap();
    first.write_all(&big).unwrap();
    read_n(&mut first, small.len() + big.len()).unwrap();
    assert_eq!(proxy.recorded(Dir::ToTarget), Some(big.clone()));
    drop(first);
    let mut second = dial(&proxy);
    let fresh = frame(b"new");
    second.write_all(&fresh).unwrap();
    assert_eq!(read_n(&mut second, fresh.len()).unwrap(), fresh);
    assert!(proxy.replay(Dir::ToTarget));
    // The echo returns the replayed frame: it reached the target on the new connection.
    assert_eq!(read_n(&mut second, big.len()).unwrap(), big);
    assert_eq!(proxy.replayed(Dir::ToTarget), 1);
}

#[test]
fn drop_stops_every_thread() {
    let echo = Echo::start();
    let proxy = Proxy::start(echo.addr);
    let streams: Vec<TcpStream> = (0..4).map(|_| dial(&proxy)).collect();
    let started = Instant::now();
    drop(proxy);
    assert!(started.elapsed() < Duration::from_secs(2), "drop took {:?}", started.elapsed());
    let mut buf = [0u8; 1];
    for mut s in streams {
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    }
}
