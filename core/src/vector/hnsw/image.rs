//! The graph as a snapshot carries it, so a restore (or a new replica's snapshot install) loads
//! the links instead of rebuilding them: a rebuild costs `n · ef_construct` distance evaluations,
//! a load only copies words.
//!
//! Links are written renumbered to *ordinals*: the position of each live point in the snapshot's
//! id order, which is also the slot a full restore gives it. Tombstoned slots (deleted or
//! replaced points) are not in the snapshot, so links to them are dropped; a tombstoned entry
//! point is replaced by the live node of the highest level (first in ordinal order). Dropping a
//! few dead nodes leaves HNSW's redundant neighbourhoods connected in practice, and the search
//! falls back to an exact scan whenever a walk comes up short, so results stay correct. The
//! level generator's position travels too, so inserts after a restore draw the levels the
//! original would have drawn.
//!
//! The loader trusts nothing: every count, level, ordinal and list length is checked before it
//! touches the link arrays, and a graph that fails is reported, never half-installed.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::graph::{Links, MAX_LEVEL};
use super::{HnswIndex, MAX_OWN_M};
use crate::vector::hnsw::rs_index::{MAX_EF_CONSTRUCT, MIN_M};
use crate::vector::index::IndexSpec;
use crate::vector::vector_store::VectorStore;

/// Graph-wide facts: the first record of a snapshot's graph section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphHeader {
    /// Neighbour limit on upper layers (layer 0 holds `2 m`); must equal the collection's.
    pub m: u32,
    /// Nodes that follow, one per live point in ordinal order.
    pub nodes: u64,
    /// Entry point (ordinal) and its level; `None` only for an empty graph.
    pub entry: Option<(u32, u8)>,
    /// Position of the level generator (ChaCha word position).
    pub rng_word_pos: u128,
}

/// One node's neighbour lists, layer 0 first, as ordinals (its level is `layers.len() - 1`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Neighbours per layer.
    pub layers: Vec<Vec<u32>>,
}

/// Maps index slots to ordinals for export: `u32::MAX` marks a slot that is not exported.
pub const NOT_EXPORTED: u32 = u32::MAX;

impl HnswIndex {
    /// The header of this graph's export, where `ordinal[slot]` renumbers live slots
    /// ([`NOT_EXPORTED`] otherwise) and `nodes` live slots are exported.
    pub fn export_header(&self, ordinal: &[u32], nodes: u64) -> GraphHeader {
        let exported = |slot: u32| ordinal.get(slot as usize).is_some_and(|&o| o != NOT_EXPORTED);
        let entry = match self.entry {
            Some((slot, level)) if exported(slot) => Some((ordinal[slot as usize], level)),
            _ => {
                // The entry is dead (or absent): the first live node of the highest level.
                let mut best: Option<(u32, u8)> = None;
                for slot in 0..self.links.slots() as u32 {
                    if let (Some(level), true) = (self.links.level(slot), exported(slot))
                        && best.is_none_or(|(_, l)| level > l)
                    {
                        best = Some((slot, level));
                    }
                }
                best.map(|(slot, level)| (ordinal[slot as usize], level))
            }
        };
        GraphHeader { m: self.m as u32, nodes, entry, rng_word_pos: self.rng.get_word_pos() }
    }

    /// The lists of live `slot`, renumbered by `ordinal`, links to unexported slots dropped.
    pub fn export_node(&self, slot: u32, ordinal: &[u32], buf: &mut Vec<u32>) -> GraphNode {
        let level = self.links.level(slot).expect("exported slots are inserted");
        let layers = (0..=level)
            .map(|layer| {
                self.links.neighbours_into(slot, layer, buf);
                buf.iter()
                    .filter_map(|&n| ordinal.get(n as usize).copied().filter(|&o| o != NOT_EXPORTED))
                    .collect()
            })
            .collect();
        GraphNode { layers }
    }
}

/// Builds an [`HnswIndex`] from a snapshot's graph section, checking it record by record.
#[derive(Debug)]
pub struct GraphLoader {
    spec: IndexSpec,
    header: GraphHeader,
    links: Links,
    loaded: u32,
    max_level: u8,
}

impl GraphLoader {
    /// Starts loading `header`'s graph for an index of `spec` over `points` restored points.
    pub fn new(spec: &IndexSpec, header: GraphHeader, points: u64) -> Result<GraphLoader, String> {
        let m = spec.m.clamp(MIN_M, MAX_OWN_M);
        if header.m as usize != m {
            return Err(format!("graph has m = {}, the collection builds with m = {m}", header.m));
        }
        if header.nodes != points {
            return Err(format!("graph has {} nodes, the snapshot {points} points", header.nodes));
        }
        if header.nodes >= u32::MAX as u64 {
            return Err(format!("graph of {} nodes is too large", header.nodes));
        }
        match header.entry {
            None if header.nodes > 0 => return Err("non-empty graph without an entry point".into()),
            Some((e, _)) if e as u64 >= header.nodes => return Err(format!("entry point {e} out of range")),
            _ => {}
        }
        let mut links = Links::new(m);
        links.reserve(header.nodes as usize);
        Ok(GraphLoader { spec: *spec, header, links, loaded: 0, max_level: 0 })
    }

    /// Adds the next node (ordinal order).
    pub fn push(&mut self, node: &GraphNode) -> Result<(), String> {
        let ordinal = self.loaded;
        if ordinal as u64 >= self.header.nodes {
            return Err(format!("more than the {} nodes the graph header announced", self.header.nodes));
        }
        if node.layers.is_empty() || node.layers.len() > MAX_LEVEL as usize + 1 {
            return Err(format!("node {ordinal} has {} layers", node.layers.len()));
        }
        let level = (node.layers.len() - 1) as u8;
        for (layer, list) in node.layers.iter().enumerate() {
            if list.len() > self.links.capacity(layer as u8) {
                return Err(format!("node {ordinal} has {} neighbours on layer {layer}", list.len()));
            }
            if let Some(&bad) = list.iter().find(|&&n| n as u64 >= self.header.nodes || n == ordinal) {
                return Err(format!("node {ordinal} links to {bad} on layer {layer}"));
            }
        }
        self.links.add_node(ordinal, level);
        for (layer, list) in node.layers.iter().enumerate() {
            self.links.set_neighbours(ordinal, layer as u8, list);
        }
        self.max_level = self.max_level.max(level);
        self.loaded += 1;
        Ok(())
    }

    /// Finishes the graph over `vectors` (row `ordinal` = that point's stored vector): checks that
    /// every node came, that every link reaches a node living on that layer, and that the entry
    /// point sits on the top level.
    pub fn finish(self, vectors: Box<dyn VectorStore>) -> Result<HnswIndex, String> {
        let GraphLoader { spec, header, links, loaded, max_level } = self;
        if loaded as u64 != header.nodes {
            return Err(format!("graph ended after {loaded} of {} nodes", header.nodes));
        }
        if vectors.values().len() != loaded as usize * spec.dim {
            let values = vectors.values().len();
            return Err(format!("{values} vector values for {loaded} nodes of dimension {}", spec.dim));
        }
        if let Some((entry, level)) = header.entry
            && (links.level(entry) != Some(level) || level != max_level)
        {
            return Err(format!("entry point {entry} at level {level} is not on the top level {max_level}"));
        }
        let mut buf = Vec::new();
        for node in 0..loaded {
            let level = links.level(node).expect("every ordinal was pushed");
            for layer in 1..=level {
                links.neighbours_into(node, layer, &mut buf);
                if let Some(&bad) = buf.iter().find(|&&n| links.level(n).is_none_or(|l| l < layer)) {
                    return Err(format!("node {node} links to {bad} on layer {layer}, where {bad} does not live"));
                }
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_word_pos(header.rng_word_pos);
        let mut index = HnswIndex::new(&IndexSpec { capacity_hint: 0, ..spec });
        debug_assert!(index.ef_construct <= MAX_EF_CONSTRUCT);
        index.links = links;
        index.vectors = vectors;
        index.len = loaded as usize;
        index.entry = header.entry;
        index.rng = rng;
        Ok(index)
    }
}
