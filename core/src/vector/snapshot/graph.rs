//! The graph section of a full snapshot: records, the writer side, and the reader's structural
//! checks (the loader in `vector::hnsw::image` checks the links themselves).

use super::*;
use crate::vector::hnsw::{GraphHeader, GraphNode, HnswIndex};

/// One record of the graph section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GraphRecord {
    /// First record: graph-wide facts.
    Header(GraphHeader),
    /// The next node's lists, in ordinal (= point id) order.
    Node(GraphNode),
}

/// What the reader has seen of the graph section so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum GraphProgress {
    /// No graph record yet.
    #[default]
    NotStarted,
    /// The header came; `left` nodes still to come.
    Nodes { left: u64 },
}

impl GraphProgress {
    /// Checks the next record's place in the section.
    pub(super) fn accept(&mut self, record: &GraphRecord) -> Result<(), String> {
        match (*self, record) {
            (GraphProgress::NotStarted, GraphRecord::Header(h)) => {
                *self = GraphProgress::Nodes { left: h.nodes };
                Ok(())
            }
            (GraphProgress::NotStarted, GraphRecord::Node(_)) => Err("graph node before the graph header".into()),
            (GraphProgress::Nodes { .. }, GraphRecord::Header(_)) => Err("second graph header".into()),
            (GraphProgress::Nodes { left: 0 }, GraphRecord::Node(_)) => Err("more graph nodes than announced".into()),
            (GraphProgress::Nodes { left }, GraphRecord::Node(_)) => {
                *self = GraphProgress::Nodes { left: left - 1 };
                Ok(())
            }
        }
    }

    /// Whether the section is complete.
    pub(super) fn complete(self) -> bool {
        self == GraphProgress::Nodes { left: 0 }
    }
}

/// The graph to write: the index, the slot -> ordinal map and the live slots in ordinal order.
pub(super) struct GraphSource<'a> {
    pub graph: &'a HnswIndex,
    pub ordinal: Vec<u32>,
    pub slots: Vec<u32>,
}

impl GraphSource<'_> {
    /// Every record of the section, lazily (one node's lists at a time).
    pub(super) fn records(&self) -> impl Iterator<Item = GraphRecord> + '_ {
        let header = GraphRecord::Header(self.graph.export_header(&self.ordinal, self.slots.len() as u64));
        let mut buf = Vec::new();
        std::iter::once(header).chain(
            self.slots.iter().map(move |&slot| GraphRecord::Node(self.graph.export_node(slot, &self.ordinal, &mut buf))),
        )
    }
}
