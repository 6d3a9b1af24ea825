//! The cluster's topology as a shard sees it: every primary with its address and slots, which one
//! is this shard, and who owns each slot. Built from `CLUSTER SLOTS` (open-source Redis Cluster)
//! or from `RG.CLUSTERSET`'s arguments (a cluster manager).

/// Redis Cluster's id length; shorter ids given to `RG.CLUSTERSET` are left-padded with `0`.
pub const ID_LEN: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("Could not parse cluster set arguments")]
    ClusterSetArguments,
}

/// One primary of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub host: String,
    pub port: u16,
    /// Sent with `AUTH` on connect: from an `RG.CLUSTERSET` address (`password@host:port`).
    pub password: Option<String>,
    pub unix_socket: Option<String>,
    /// The first slot range seen for the node.
    pub min_slot: u16,
    pub max_slot: u16,
}

/// A slot range of `CLUSTER SLOTS` (its primary only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
    pub host: String,
    pub port: u16,
    pub id: String,
}

#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub my_id: String,
    pub nodes: Vec<Node>,
    /// Redis runs as a cluster (or the cluster manager said there is more than one range).
    pub cluster_mode: bool,
    /// The ranges it was built from: a changed `CLUSTER SLOTS` means a changed topology.
    pub ranges: Vec<SlotRange>,
    /// For each slot the index of its node in `nodes`, `u16::MAX` when nobody owns it.
    slot_owner: Vec<u16>,
    /// The `RG.CLUSTERSET` arguments it came from (argv[0] excluded), forwarded to a peer that
    /// has no topology yet.
    pub cluster_set: Option<Vec<Vec<u8>>>,
}

/// Left-pads `id` with `0` to 40 characters.
pub fn pad_id(id: &str) -> String {
    if id.len() >= ID_LEN {
        return id.to_string();
    }
    format!("{}{id}", "0".repeat(ID_LEN - id.len()))
}

impl Topology {
    fn add_range(&mut self, id: &str, start: u16, end: u16, make: impl FnOnce() -> Node) {
        let index = match self.nodes.iter().position(|n| n.id == id) {
            Some(i) => i,
            None => {
                self.nodes.push(make());
                self.nodes.len() - 1
            }
        };
        if self.slot_owner.is_empty() {
            self.slot_owner = vec![u16::MAX; crate::slots::SLOTS];
        }
        let end = (end as usize).min(crate::slots::SLOTS - 1);
        for slot in start as usize..=end {
            self.slot_owner[slot] = index as u16;
        }
    }

    /// The topology of an open-source Redis Cluster: `ranges` from `CLUSTER SLOTS`, this shard
    /// being `my_id` (`CLUSTER MYID`).
    pub fn from_cluster_slots(my_id: &str, ranges: Vec<SlotRange>) -> Topology {
        let mut topology = Topology {
            my_id: my_id.to_string(),
            cluster_mode: true,
            ..Topology::default()
        };
        for range in &ranges {
            topology.add_range(&range.id, range.start, range.end, || Node {
                id: range.id.clone(),
                host: range.host.clone(),
                port: range.port,
                password: None,
                unix_socket: None,
                min_slot: range.start,
                max_slot: range.end,
            });
        }
        topology.ranges = ranges;
        topology
    }

    /// Parses `RG.CLUSTERSET`'s arguments (`args[0]` is the command name), positional as the
    /// spec gives them: `_ _ _ _ _ <myid> _ <n>` then per range
    /// `_ <id> _ <min> <max> _ <password@host:port>`, then `UNIXADDR <path>` optionally and, between
    /// ranges, one ignored token.
    pub fn from_cluster_set(args: &[Vec<u8>]) -> Result<Topology, TopologyError> {
        let bad = || TopologyError::ClusterSetArguments;
        if args.len() < 10 {
            return Err(bad());
        }
        let text = |i: usize| -> Result<&str, TopologyError> {
            args.get(i)
                .and_then(|a| std::str::from_utf8(a).ok())
                .ok_or_else(bad)
        };
        let number =
            |i: usize| -> Result<u64, TopologyError> { text(i)?.parse::<u64>().map_err(|_| bad()) };
        let my_id = pad_id(text(6)?);
        let ranges = number(8)?;
        let mut topology = Topology {
            my_id,
            cluster_mode: ranges > 1,
            cluster_set: Some(args[1..].to_vec()),
            ..Topology::default()
        };
        let mut at = 9;
        for range in 0..ranges {
            let id = pad_id(text(at + 1)?);
            let start = number(at + 3)?;
            let end = number(at + 4)?;
            if start > end || end as usize >= crate::slots::SLOTS {
                return Err(bad());
            }
            let (password, host, port) = parse_address(text(at + 6)?).ok_or_else(bad)?;
            at += 7;
            let mut unix_socket = None;
            if args
                .get(at)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"UNIXADDR"))
            {
                unix_socket = Some(text(at + 1)?.to_string());
                at += 2;
            }
            if range + 1 < ranges {
                at += 1;
            }
            let (start, end) = (start as u16, end as u16);
            topology.ranges.push(SlotRange {
                start,
                end,
                host: host.clone(),
                port,
                id: id.clone(),
            });
            topology.add_range(&id.clone(), start, end, || Node {
                id,
                host,
                port,
                password: Some(password),
                unix_socket,
                min_slot: start,
                max_slot: end,
            });
        }
        Ok(topology)
    }

    /// "Cluster mode" for every decision: a cluster with more than one primary.
    pub fn is_cluster(&self) -> bool {
        self.cluster_mode && self.nodes.len() > 1
    }

    pub fn me(&self) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == self.my_id)
    }

    /// The other primaries.
    pub fn peers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.id != self.my_id)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn owner_of(&self, slot: u16) -> Option<&Node> {
        let index = *self.slot_owner.get(slot as usize)?;
        self.nodes.get(index as usize)
    }
}

/// `password@host:port`: the password is the text before the first `@` (which is required,
/// the password may be empty), the port follows the last `:`, a bracketed IPv6 host loses its
/// brackets.
pub fn parse_address(address: &str) -> Option<(String, String, u16)> {
    let (password, rest) = address.split_once('@')?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((password.to_string(), host.to_string(), port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Vec<u8>> {
        line.split(' ').map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_spec_example_of_cluster_set() {
        let t = Topology::from_cluster_set(&args(
            "RG.CLUSTERSET NO-USED NO-USED NO-USED NO-USED NO-USED 1 NO-USED 2 NO-USED 1 NO-USED 0 8192 NO-USED password@localhost:6379 NO-USED NO-USED 2 NO-USED 8193 16383 NO-USED password@localhost:15000",
        ))
        .unwrap();
        assert_eq!(t.my_id, "0000000000000000000000000000000000000001");
        assert!(t.is_cluster());
        assert_eq!(t.nodes.len(), 2);
        let peer = t.peers().next().unwrap();
        assert_eq!(peer.id, "0000000000000000000000000000000000000002");
        assert_eq!((peer.host.as_str(), peer.port), ("localhost", 15000));
        assert_eq!(peer.password.as_deref(), Some("password"));
        assert_eq!((peer.min_slot, peer.max_slot), (8193, 16383));
        assert_eq!(t.owner_of(0).unwrap().id, t.my_id);
        assert_eq!(t.owner_of(16383).unwrap().id, peer.id);
    }

    #[test]
    fn bad_cluster_set_arguments_are_refused() {
        for line in [
            "RG.CLUSTERSET a b c",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ x _ 1 _ 0 8192 _ p@h:1",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ 1 _ 1 _ 0 8192 _ nopassword:1",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ 2 _ 1 _ 0 8192 _ p@h:1",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ 1 _ 1 _ 9 3 _ p@h:1",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ 1 _ 1 _ 0 99999 _ p@h:1",
            "RG.CLUSTERSET _ _ _ _ _ 1 _ 1 _ 1 _ 0 1 _ p@h:port",
        ] {
            assert_eq!(
                Topology::from_cluster_set(&args(line)).err(),
                Some(TopologyError::ClusterSetArguments),
                "{line}"
            );
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("@[::1]:6379"),
            Some((String::new(), "::1".into(), 6379))
        );
        assert_eq!(
            parse_address("p@ss@h:1"),
            Some(("p".into(), "ss@h".into(), 1))
        );
        assert_eq!(parse_address("h:1"), None);
    }

    #[test]
    fn cluster_slots_build_one_node_per_primary() {
        let range = |start, end, port: u16, id: &str| SlotRange {
            start,
            end,
            host: "127.0.0.1".into(),
            port,
            id: id.into(),
        };
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let t = Topology::from_cluster_slots(
            &a,
            vec![
                range(0, 100, 1, &a),
                range(101, 16383, 2, &b),
                range(50, 60, 1, &a),
            ],
        );
        assert!(t.is_cluster());
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(
            (t.me().unwrap().min_slot, t.me().unwrap().max_slot),
            (0, 100)
        );
        assert_eq!(t.owner_of(16383).unwrap().port, 2);
        let single = Topology::from_cluster_slots(&a, vec![range(0, 16383, 1, &a)]);
        assert!(!single.is_cluster());
    }
}
