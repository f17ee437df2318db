//! RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

/// A 32-byte SHA-256 hash.
pub type Hash = [u8; 32];

pub(crate) fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// `SHA-256(0x00 || data)`: the hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0u8], data])
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The largest power of two strictly smaller than `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of these leaf hashes (RFC 6962 section 2.1). Empty: SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => sha256(&[]),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            let (l, r) = leaves.split_at(k);
            node_hash(&root(l), &root(r))
        }
    }
}

/// The root of a growing tree, kept as its perfect subtrees (at most 64 hashes).
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// (height, hash) of perfect subtrees, largest first.
    stack: Vec<(u32, Hash)>,
    size: u64,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut item = (0u32, leaf);
        while let Some(&(h, left)) = self.stack.last() {
            if h != item.0 {
                break;
            }
            self.stack.pop();
            item = (h + 1, node_hash(&left, &item.1));
        }
        self.stack.push(item);
        self.size += 1;
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The RFC 6962 root of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return sha256(&[]);
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// The audit path for leaf `index` in the tree of `leaves` (RFC 6962 section 2.1.1).
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    fn walk(m: usize, d: &[Hash], path: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        let (l, r) = d.split_at(k);
        if m < k {
            walk(m, l, path);
            path.push(root(r));
        } else {
            walk(m - k, r, path);
            path.push(root(l));
        }
    }
    walk(index, leaves, &mut path);
    Some(path)
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    expected_root: &Hash,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *expected_root
}

/// The consistency proof between the first `m` leaves and all of `leaves` (RFC 6962 section 2.1.2).
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if m == 0 || m > leaves.len() {
        return None;
    }
    fn sub(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = d.len();
        if m == n {
            if !complete {
                out.push(root(d));
            }
            return;
        }
        let k = split(n);
        let (l, r) = d.split_at(k);
        if m <= k {
            sub(m, l, complete, out);
            out.push(root(r));
        } else {
            sub(m - k, r, false, out);
            out.push(root(l));
        }
    }
    let mut out = Vec::new();
    sub(m, leaves, true, &mut out);
    Some(out)
}

/// Verifies a consistency proof (RFC 9162 section 2.1.4.2).
pub fn verify_consistency(
    m: u64,
    n: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if m.is_power_of_two() {
        path.insert(0, *first_root);
    }
    let Some((&first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (m - 1, n - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *first_root && sr == *second_root
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    #[test]
    fn empty_and_known_roots() {
        // RFC 6962 test vector: the empty tree hash.
        let empty = root(&[]);
        let hex: String = empty.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The leaf hash of the empty string (Certificate Transparency test vector).
        let hex: String = leaf_hash(b"").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }

    proptest! {
        #[test]
        fn frontier_matches_recursive_root(n in 0usize..200) {
            let l = leaves(n);
            let mut f = Frontier::new();
            for h in &l { f.push(*h); }
            prop_assert_eq!(f.root(), root(&l));
        }

        #[test]
        fn inclusion_proofs_verify_and_only_for_their_leaf(n in 1usize..100, i in 0usize..100) {
            let i = i % n;
            let l = leaves(n);
            let r = root(&l);
            let p = inclusion_proof(i, &l).unwrap();
            prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &p, &r));
            let other = leaf_hash(b"other");
            prop_assert!(!verify_inclusion(i as u64, n as u64, &other, &p, &r));
            if n > 1 {
                prop_assert!(!verify_inclusion(((i + 1) % n) as u64, n as u64, &l[i], &p, &r) || l[(i + 1) % n] == l[i]);
            }
        }

        #[test]
        fn consistency_proofs_verify_and_detect_rewrites(n in 1usize..100, m in 1usize..100) {
            let m = 1 + (m - 1) % n;
            let l = leaves(n);
            let p = consistency_proof(m, &l).unwrap();
            prop_assert!(verify_consistency(m as u64, n as u64, &root(&l[..m]), &root(&l), &p));
            let mut rewritten = l.clone();
            rewritten[m - 1] = leaf_hash(b"rewritten");
            let p2 = consistency_proof(m, &rewritten).unwrap();
            prop_assert!(!verify_consistency(m as u64, n as u64, &root(&l[..m]), &root(&rewritten), &p2));
        }
    }
}
