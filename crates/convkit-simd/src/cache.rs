//! The data caches of this CPU, read once per process, for the GEMM's cache blocking.
//!
//! x86-64 reads them from CPUID's deterministic cache parameters (leaf `0x8000_001D` on AMD
//! with topology extensions, leaf 4 on Intel): one sub-leaf per cache, size = ways ·
//! partitions · line bytes · sets. Elsewhere, or where CPUID does not say, the sizes of
//! [`CacheSizes::FALLBACK`] stand in.

use std::sync::OnceLock;

/// Per-core data cache sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSizes {
    /// Level-1 data cache.
    pub l1d: usize,
    /// Level-2 cache (unified).
    pub l2: usize,
}

impl CacheSizes {
    /// Sizes assumed where they cannot be read: AMD Zen 2–4 cores' 32 KiB L1d and 512 KiB
    /// L2 (half of the L2 that the blocking was measured on, so blocks err small).
    pub const FALLBACK: CacheSizes = CacheSizes {
        l1d: 32 << 10,
        l2: 512 << 10,
    };

    /// This CPU's caches (read once per process).
    pub fn detect() -> CacheSizes {
        static DETECTED: OnceLock<CacheSizes> = OnceLock::new();
        *DETECTED.get_or_init(|| read().unwrap_or(CacheSizes::FALLBACK))
    }
}

/// One cache described by a deterministic-cache-parameters sub-leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CacheLeaf {
    level: u32,
    /// Data (1) or unified (3): the caches loads go through.
    holds_data: bool,
    bytes: usize,
}

/// Decodes a sub-leaf's EAX, EBX and ECX; `None` past the last cache (type 0).
fn decode(eax: u32, ebx: u32, ecx: u32) -> Option<CacheLeaf> {
    let kind = eax & 0x1f;
    if kind == 0 {
        return None;
    }
    let field =
        |value: u32, shift: u32, bits: u32| ((value >> shift) & ((1 << bits) - 1)) as usize + 1;
    let bytes = field(ebx, 22, 10) * field(ebx, 12, 10) * field(ebx, 0, 12) * (ecx as usize + 1);
    Some(CacheLeaf {
        level: (eax >> 5) & 0x7,
        holds_data: kind == 1 || kind == 3,
        bytes,
    })
}

/// The L1d and L2 among `leaves`, when both are there.
fn sizes(leaves: impl Iterator<Item = CacheLeaf>) -> Option<CacheSizes> {
    let (mut l1d, mut l2) = (None, None);
    for leaf in leaves.filter(|leaf| leaf.holds_data) {
        match leaf.level {
            1 => l1d = Some(leaf.bytes),
            2 => l2 = Some(leaf.bytes),
            _ => {}
        }
    }
    Some(CacheSizes { l1d: l1d?, l2: l2? })
}

#[cfg(target_arch = "x86_64")]
fn read() -> Option<CacheSizes> {
    use std::arch::x86_64::__cpuid_count;
    // Sub-leaves of one leaf until the null cache (at most a handful; bounded anyway).
    let leaves = |leaf: u32| {
        (0..16).map_while(move |sub| {
            let regs = __cpuid_count(leaf, sub);
            decode(regs.eax, regs.ebx, regs.ecx)
        })
    };
    const AMD_CACHE_LEAF: u32 = 0x8000_001d;
    const TOPOLOGY_EXTENSIONS: u32 = 1 << 22;
    let max_extended = __cpuid_count(0x8000_0000, 0).eax;
    let amd = max_extended >= AMD_CACHE_LEAF
        && __cpuid_count(0x8000_0001, 0).ecx & TOPOLOGY_EXTENSIONS != 0;
    let from_amd_leaf = amd.then(|| sizes(leaves(AMD_CACHE_LEAF))).flatten();
    from_amd_leaf.or_else(|| {
        (__cpuid_count(0, 0).eax >= 4)
            .then(|| sizes(leaves(4)))
            .flatten()
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn read() -> Option<CacheSizes> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// EAX, EBX, ECX of a sub-leaf for a cache of `level`, `kind`, and its geometry.
    fn leaf(level: u32, kind: u32, [ways, partitions, line, sets]: [u32; 4]) -> [u32; 3] {
        [
            level << 5 | kind,
            (ways - 1) << 22 | (partitions - 1) << 12 | (line - 1),
            sets - 1,
        ]
    }

    #[test]
    fn decodes_the_data_caches_of_a_zen3_core() {
        // L1d 32 KiB 8-way, L1i 32 KiB, L2 512 KiB 8-way, L3 32 MiB 16-way.
        let subleaves = [
            leaf(1, 1, [8, 1, 64, 64]),
            leaf(1, 2, [8, 1, 64, 64]),
            leaf(2, 3, [8, 1, 64, 1024]),
            leaf(3, 3, [16, 1, 64, 32768]),
            [0, 0, 0],
        ];
        let caches = subleaves
            .iter()
            .map_while(|&[eax, ebx, ecx]| decode(eax, ebx, ecx));
        assert_eq!(
            sizes(caches),
            Some(CacheSizes {
                l1d: 32 << 10,
                l2: 512 << 10
            })
        );
    }

    #[test]
    fn a_missing_level_is_none() {
        let only_l1 = [leaf(1, 1, [12, 1, 64, 64])];
        let caches = only_l1
            .iter()
            .map_while(|&[eax, ebx, ecx]| decode(eax, ebx, ecx));
        assert_eq!(sizes(caches), None);
    }

    #[test]
    fn detection_gives_plausible_sizes() {
        let caches = CacheSizes::detect();
        assert!((8 << 10..=4 << 20).contains(&caches.l1d), "{caches:?}");
        assert!((64 << 10..=64 << 20).contains(&caches.l2), "{caches:?}");
    }
}
