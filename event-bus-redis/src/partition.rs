//! Partitioned streams: a hot event type spread over N streams, each tenant's events on one of
//! them (so each tenant's order is kept), every partition read by every subscriber of the type.
//!
//! **Keys.** Partition `i` of `N` of the stream `{prefix}:{EVENT_TYPE}` is
//! `{prefix}:{p<i>of<N>-<k>}:{EVENT_TYPE}` (per channel: `{prefix}:{channel}:{p<i>of<N>-<k>}:{EVENT_TYPE}`):
//! the event type stays the key's last segment, and the segment in braces is a Redis Cluster
//! hash tag, so the slot of the key, and of every key derived from it (dead letters, replay
//! requests, records of failed runs), is the slot of that tag. `k` is the smallest number
//! (from 0) that puts the tag's slot in the middle half of the `i`-th of `N` equal ranges of the
//! cluster's 16,384 slots ([`tag`]): the partitions sit on distinct slots, evenly spread, so
//! with the slots split evenly over the masters (as `redis-cli --cluster create` does) each
//! master holds `N / masters` partitions (exactly, when `N` is a multiple of the masters).
//! The tag depends only on `i` and `N`: partition `i` of every type partitioned `N` ways shares
//! a slot.
//!
//! **Tenants.** An event goes to partition `CRC16(tenant id) mod N`, the CRC over the tenant's
//! UUID as lowercase hyphenated text ([`partition_of`]): stable across processes, versions and
//! languages.
//!
//! A key prefix that has a hash tag of its own (`{app}:event`) puts every key on that one
//! slot: partitions then still split a type's stream, but not over nodes.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16_384;

/// The most partitions an event type may have.
pub const MAX_PARTITIONS: u16 = 1_024;

/// CRC16 as Redis Cluster computes key slots (XMODEM: polynomial 0x1021, initial value 0, no
/// reflection, no final xor).
///
/// ```
/// assert_eq!(event_bus_redis::admin::crc16(b"123456789"), 0x31C3);
/// ```
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The cluster slot of `key`: CRC16 of its hash tag (the text between the first `{` and the
/// next `}`, when not empty), else of the whole key, modulo 16,384.
///
/// ```
/// use event_bus_redis::admin::slot;
///
/// assert_eq!(slot("123456789"), 12739);
/// assert_eq!(slot("event:{p0of8-3}:TICKET_UPDATED"), slot("p0of8-3"));
/// ```
pub fn slot(key: &str) -> u16 {
    crate::cluster::key_slot(key.as_bytes())
}

/// The hash tag of partition `i` of `n` (without braces): `p<i>of<n>-<k>` with the smallest
/// `k` whose slot falls in the middle half of the `i`-th of `n` equal slot ranges (in the range
/// itself when it is narrower than 4 slots).
///
/// ```
/// use event_bus_redis::admin::{partition_tag, slot};
///
/// let tag = partition_tag(3, 8);
/// let s = slot(&tag);
/// assert!((3 * 2048 + 512..3 * 2048 + 1536).contains(&s), "{tag} is on slot {s}");
/// ```
pub fn partition_tag(i: u16, n: u16) -> String {
    let n = u32::from(n.clamp(1, MAX_PARTITIONS));
    let i = u32::from(i).min(n - 1);
    let slots = u32::from(SLOTS);
    let (lo, hi) = (i * slots / n, (i + 1) * slots / n);
    let (lo, hi) = if hi - lo >= 4 {
        (lo + (hi - lo) / 4, hi - (hi - lo) / 4)
    } else {
        (lo, hi)
    };
    let mut k: u32 = 0;
    loop {
        let tag = format!("p{i}of{n}-{k}");
        if (lo..hi).contains(&u32::from(slot(&tag))) {
            return tag;
        }
        k += 1;
    }
}

/// The partition of `tenant` among `n`: `CRC16(tenant as lowercase hyphenated text) mod n`.
///
/// ```
/// let tenant = uuid::Uuid::from_u128(0x4f7c3d1e_2b9a_4c8d_9e0f_1a2b3c4d5e6f);
/// assert!(event_bus_redis::admin::partition_of(tenant, 8) < 8);
/// ```
pub fn partition_of(tenant: Uuid, n: u16) -> u16 {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = tenant.hyphenated().encode_lower(&mut text);
    crc16(text.as_bytes()) % n.max(1)
}

/// The key of a partition: `base` (`{prefix}[:{channel}]:{EVENT_TYPE}`) with the segment
/// `{tag}` before its last segment, the event type.
///
/// ```
/// use event_bus_redis::admin::partition_stream;
///
/// assert_eq!(
///     partition_stream("event:TICKET_UPDATED", "p0of2-1"),
///     "event:{p0of2-1}:TICKET_UPDATED"
/// );
/// ```
pub fn partition_stream(base: &str, tag: &str) -> String {
    let (head, event_type) = base.rsplit_once(':').unwrap_or(("", base));
    let mut key = String::with_capacity(base.len() + tag.len() + 3);
    if !head.is_empty() {
        key.push_str(head);
        key.push(':');
    }
    key.push('{');
    key.push_str(tag);
    key.push_str("}:");
    key.push_str(event_type);
    key
}

/// The partitioned event types of a bus, with each one's partition tags.
#[derive(Debug, Clone, Default)]
pub(crate) struct Partitions {
    tags: HashMap<String, Arc<[String]>>,
}

impl Partitions {
    /// Partitions `event_type` `n` ways (`n` of 1 or less: not partitioned).
    pub(crate) fn set(&mut self, event_type: &str, n: u16) {
        let n = n.min(MAX_PARTITIONS);
        if n <= 1 {
            self.tags.remove(event_type);
            return;
        }
        let tags: Arc<[String]> = (0..n).map(|i| partition_tag(i, n)).collect();
        self.tags.insert(event_type.to_owned(), tags);
    }

    /// Whether `event_type` is partitioned.
    pub(crate) fn is_partitioned(&self, event_type: &str) -> bool {
        self.tags.contains_key(event_type)
    }

    /// The partitioned event types.
    pub(crate) fn event_types(&self) -> impl Iterator<Item = &str> {
        self.tags.keys().map(String::as_str)
    }

    /// Whether no event type is partitioned.
    pub(crate) fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Whether `event_type` is spread over partitions.
    pub(crate) fn partitioned(&self, event_type: &str) -> bool {
        self.tags.contains_key(event_type)
    }

    /// The stream `tenant`'s event of `event_type` goes to, `base` being the type's stream.
    pub(crate) fn stream(&self, base: String, event_type: &str, tenant: Uuid) -> String {
        match self.tags.get(event_type) {
            Some(tags) => {
                let i = partition_of(tenant, tags.len() as u16);
                partition_stream(&base, &tags[usize::from(i)])
            }
            None => base,
        }
    }

    /// Every stream of `event_type` whose unpartitioned stream is `base`: its partitions, or
    /// `base` itself.
    pub(crate) fn streams(&self, base: String, event_type: &str) -> Vec<String> {
        match self.tags.get(event_type) {
            Some(tags) => tags.iter().map(|t| partition_stream(&base, t)).collect(),
            None => vec![base],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_and_slots_match_the_cluster_spec() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
        assert_eq!(slot("123456789"), 12739);
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("bar"), 5061);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        // An empty tag hashes the whole key; only the first `{` counts.
        assert_eq!(slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(slot("foo{{bar}}zap"), crc16(b"{bar") % SLOTS);
        assert_eq!(slot("foo{bar}{zap}"), slot("bar"));
    }

    #[test]
    fn partition_tags_land_on_distinct_evenly_spread_slots() {
        for n in [2u16, 3, 4, 6, 8, 12, 16, 64, 1024] {
            let width = u32::from(SLOTS) / u32::from(n);
            let mut slots = Vec::new();
            for i in 0..n {
                let s = u32::from(slot(&partition_tag(i, n)));
                let lo = u32::from(i) * u32::from(SLOTS) / u32::from(n);
                let hi = (u32::from(i) + 1) * u32::from(SLOTS) / u32::from(n);
                assert!((lo..hi).contains(&s), "partition {i} of {n} on slot {s}");
                if width >= 4 {
                    assert!(s >= lo + (hi - lo) / 4 && s < hi - (hi - lo) / 4);
                }
                slots.push(s);
            }
            let mut distinct = slots.clone();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                slots.len(),
                "{n} partitions on distinct slots"
            );
        }
        // Three masters of 5,461 slots each (as `redis-cli --cluster create` splits them):
        // six partitions give each master two.
        let owner = |s: u16| usize::from(s) * 3 / usize::from(SLOTS);
        let mut per_master = [0; 3];
        for i in 0..6 {
            per_master[owner(slot(&partition_tag(i, 6)))] += 1;
        }
        assert_eq!(per_master, [2, 2, 2]);
    }

    #[test]
    fn tenants_spread_over_partitions_and_stay_put() {
        let tenant = Uuid::from_u128(0x4f7c3d1e_2b9a_4c8d_9e0f_1a2b3c4d5e6f);
        assert_eq!(
            partition_of(tenant, 8),
            crc16(b"4f7c3d1e-2b9a-4c8d-9e0f-1a2b3c4d5e6f") % 8
        );
        let mut counts = [0u32; 8];
        for i in 0..8_000u128 {
            let t = Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
            counts[usize::from(partition_of(t, 8))] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn keys() {
        assert_eq!(
            partition_stream("event:global:TICKET_UPDATED", "p1of4-0"),
            "event:global:{p1of4-0}:TICKET_UPDATED"
        );
        assert_eq!(partition_stream("T", "x"), "{x}:T");
        let mut p = Partitions::default();
        p.set("T", 4);
        let streams = p.streams("event:T".to_owned(), "T");
        assert_eq!(streams.len(), 4);
        let tenant = Uuid::new_v4();
        let stream = p.stream("event:T".to_owned(), "T", tenant);
        assert_eq!(
            stream,
            streams[usize::from(partition_of(tenant, 4))],
            "a tenant's events go to one of the type's partitions"
        );
        assert_eq!(p.stream("event:U".to_owned(), "U", tenant), "event:U");
        p.set("T", 1);
        assert!(p.is_empty());
    }
}
