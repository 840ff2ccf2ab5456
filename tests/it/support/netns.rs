//! Test hosts in Linux network namespaces, for partitions made by the kernel rather than by a
//! proxy (issue #4, "Partitions with real processes").
//!
//! Each host `i` is a namespace with two veths: `eth0` on a data bridge (10.213.T.i/24, peer
//! traffic only, the root namespace has no address there) and `eth1` on a management bridge
//! (10.214.T.i/24, where the root namespace is .254, so clients run in the test process). A
//! node listens on `0.0.0.0:PORT`, so it takes peers on the data address and clients on the
//! management one; its peer list names every other node by its data address. Cutting the data
//! network therefore never hides a node's status from the test.
//!
//! Every namespace, veth and bridge is named with the test's tag and the process id, recorded
//! when created, and removed by `Drop` (nodes first, by pid), also when the test panics. No
//! address outside these two /24s and loopback is ever used.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::procs::ProcessGroup;

use crate::common::{HARNESS, STOP_GRACE};

/// The port every node listens on inside its namespace.
pub const PORT: u16 = 7000;

/// Runs `ip args`, returning stderr on failure.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).stdin(Stdio::null()).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Why namespaces cannot be used here, if they cannot: the test then skips.
pub fn unavailable(tag: &str) -> Option<String> {
    let probe = format!("hnprobe-{tag}{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace ({e})"));
    }
    let _ = ip(&["netns", "del", &probe]);
    None
}

/// Five (or more) hosts on a data and a management bridge; see the module doc.
pub struct Hosts {
    tag: String,
    /// The third octet of both /24s, so two tests running at once never share a subnet.
    subnet: u8,
    count: u16,
    namespaces: Vec<String>,
    links: Vec<String>,
    children: ProcessGroup<u16>,
    log_dir: PathBuf,
}

impl Hosts {
    /// Creates `count` hosts for the test `tag` (a few letters); `Err` if a step fails, after
    /// removing what was made.
    pub fn create(tag: &str, subnet: u8, count: u16) -> Result<Hosts, String> {
        let pid = std::process::id() % 100_000;
        let log_dir = std::env::temp_dir().join(format!("harness-netns-{tag}-{pid}"));
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut hosts = Hosts {
            tag: format!("{tag}{pid}"),
            subnet,
            count,
            namespaces: Vec::new(),
            links: Vec::new(),
            children: ProcessGroup::new(STOP_GRACE),
            log_dir,
        };
        // A host that already routes either /24 would see our traffic leave the test's world.
        let routes = Command::new("ip").args(["-4", "route"]).output().map_err(|e| e.to_string())?;
        let routes = String::from_utf8_lossy(&routes.stdout);
        for net in [format!("10.213.{subnet}."), format!("10.214.{subnet}.")] {
            if routes.contains(&net) {
                return Err(format!("{net}0/24 is already routed on this host"));
            }
        }
        hosts.build()?;
        Ok(hosts)
    }

    fn build(&mut self) -> Result<(), String> {
        let (data, mgmt) = (self.bridge("d"), self.bridge("m"));
        for bridge in [&data, &mgmt] {
            ip(&["link", "add", bridge, "type", "bridge"])?;
            self.links.push(bridge.clone());
            ip(&["link", "set", bridge, "up"])?;
        }
        ip(&["addr", "add", &format!("10.214.{}.254/24", self.subnet), "dev", &mgmt])?;
        for i in 1..=self.count {
            let ns = self.namespace(i);
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            for (inner, bridge, net) in [("eth0", &data, 213), ("eth1", &mgmt, 214)] {
                let outer = self.veth(inner, i);
                ip(&["link", "add", &outer, "type", "veth", "peer", "name", inner, "netns", &ns])?;
                self.links.push(outer.clone());
                ip(&["link", "set", &outer, "master", bridge])?;
                ip(&["link", "set", &outer, "up"])?;
                ip(&["-n", &ns, "addr", "add", &format!("10.{net}.{}.{i}/24", self.subnet), "dev", inner])?;
                ip(&["-n", &ns, "link", "set", inner, "up"])?;
            }
        }
        Ok(())
    }

    fn bridge(&self, which: &str) -> String {
        format!("hb{which}{}", self.tag)
    }

    fn namespace(&self, i: u16) -> String {
        format!("hns-{}-{i}", self.tag)
    }

    /// The root-side end of host `i`'s `eth0` (data) or `eth1` (management) veth; at most 15
    /// bytes, the kernel's limit.
    fn veth(&self, inner: &str, i: u16) -> String {
        let name = format!("hv{}{}{i}", &inner[3..], self.tag);
        assert!(name.len() <= 15, "interface name {name} too long");
        name
    }

    /// Host `i`'s data address (where peers dial it).
    pub fn data_addr(&self, i: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 213, self.subnet, i as u8), PORT))
    }

    /// Host `i`'s management address (where the test's clients connect).
    pub fn client_addr(&self, i: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 214, self.subnet, i as u8), PORT))
    }

    /// Every host's `(id, client address)`.
    pub fn endpoints(&self) -> Vec<(u16, SocketAddr)> {
        (1..=self.count).map(|i| (i, self.client_addr(i))).collect()
    }

    /// Starts `harness node` in host `i`'s namespace.
    pub fn start(&mut self, i: u16, token_timeout: Duration) {
        let peers: Vec<String> = (1..=self.count)
            .map(
                |j| if j == i { format!("{j}=0.0.0.0:{PORT}") } else { format!("{j}={}", self.data_addr(j)) },
            )
            .collect();
        // A restarted node appends to its log, so one file tells the whole story.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("node-{i}.log")))
            .unwrap();
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(i), HARNESS, "node", "--id", &i.to_string()])
            .args(["--listen", &format!("0.0.0.0:{PORT}"), "--peers", &peers.join(",")])
            .args(["--token-timeout", &token_timeout.as_millis().to_string()])
            .env("RUST_LOG", std::env::var("NETNS_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // `ip netns exec` execs the command in place, so the child's pid is the node's.
        self.children.spawn(i, command).unwrap_or_else(|e| panic!("start n{i}: {e}"));
    }

    /// Kills host `i`'s node with SIGKILL and reaps it; `start` runs it again.
    pub fn kill(&mut self, i: u16) -> Result<(), String> {
        self.children.kill(i).map(|_| ()).map_err(|e| format!("kill n{i}: {e}"))
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) host `i`'s node.
    pub fn set_paused(&mut self, i: u16, paused: bool) -> Result<(), String> {
        let result = if paused { self.children.pause(i) } else { self.children.resume(i) };
        result.map_err(|e| format!("{} n{i}: {e}", if paused { "pause" } else { "resume" }))
    }

    /// Takes host `i` off (or back onto) the data bridge by setting the root end of its data
    /// veth down (up): the kernel drops everything, no FIN or RST is ever sent.
    pub fn set_data_link(&self, i: u16, up: bool) -> Result<(), String> {
        ip(&["link", "set", &self.veth("eth0", i), if up { "up" } else { "down" }])
    }

    /// Cuts (or restores) only the pair `{a, b}`: each drops packets for the other's data
    /// address by a blackhole route, while both keep every other link.
    pub fn set_pair_cut(&self, a: u16, b: u16, cut: bool) -> Result<(), String> {
        for (x, y) in [(a, b), (b, a)] {
            let target = format!("10.213.{}.{y}/32", self.subnet);
            let verb = if cut { "add" } else { "del" };
            ip(&["-n", &self.namespace(x), "route", verb, "blackhole", &target])?;
        }
        Ok(())
    }

    /// Where the node logs are.
    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }

    fn stop_nodes(&mut self) {
        self.children.stop_all();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        self.stop_nodes();
        // Deleting a namespace destroys its veth ends and with them the pairs; the explicit
        // deletes below catch what a half-finished build left in the root namespace.
        for ns in self.namespaces.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
        for link in self.links.drain(..).rev() {
            let _ = ip(&["link", "del", &link]);
        }
        if std::thread::panicking() {
            eprintln!("node logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}
