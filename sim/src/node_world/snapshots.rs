//! The node world's engine snapshots: a machine's durable snapshot store serves transfers to
//! lagging replicas, and installs replace an engine atomically once verified.

use super::host::World;
use bytes::Bytes;
use vecraft_core::node::shard::restore_bytes;
use vecraft_core::raft::{GroupId, RaftInput, RaftOutput};

impl World {
    /// Serves a group's snapshot transfer requests from the machine's snapshot store.
    pub(super) fn snapshot_io(&mut self, m: usize, group: GroupId, output: RaftOutput) -> Option<RaftInput> {
        let mach = &mut self.machines[m];
        let p = mach.proc.as_mut()?;
        match output {
            RaftOutput::ReadSnapshotChunk { to, meta, offset, len } => {
                let data = match mach.snapshots.get(&group) {
                    Some((index, bytes)) if *index == meta.index => {
                        let start = (offset as usize).min(bytes.len());
                        let end = (offset.saturating_add(len) as usize).min(bytes.len());
                        Some(bytes.slice(start..end))
                    }
                    _ => None,
                };
                Some(RaftInput::SnapshotChunk { to, index: meta.index, offset, data })
            }
            RaftOutput::StageSnapshotChunk { meta, offset, data } => {
                match p.staging.get_mut(&group) {
                    _ if offset == 0 => {
                        p.staging.insert(group, (meta, data.to_vec()));
                    }
                    Some((m2, bytes)) if *m2 == meta && bytes.len() as u64 == offset => bytes.extend_from_slice(&data),
                    _ => {
                        p.staging.remove(&group);
                    }
                }
                None
            }
            RaftOutput::InstallSnapshot { meta } => {
                let staged = p.staging.remove(&group).filter(|(m2, _)| *m2 == meta).map(|(_, b)| b).unwrap_or_default();
                let restored = meta.verify(&staged).map_err(|e| e.to_string()).and_then(|()| restore_bytes(&staged));
                match restored {
                    Ok(mut c) => {
                        // The replica keeps its name: the snapshot may predate a replace.
                        if let Some(name) = p.engines.get(&group).map(|e| e.name().to_string()) {
                            c.set_name(&name).expect("a name the engine already had");
                        }
                        self.cfg.local_policies(m, &mut c);
                        if self.cfg.restored(&mut c) {
                            *self.faults.entry("quantization-reverted").or_insert(0) += 1;
                        }
                        if self.cfg.restore_drops_field_indexes {
                            for field in c.field_indexes().into_keys() {
                                c.drop_field_index(&field);
                            }
                        }
                        p.engines.insert(group, c);
                        p.applied.insert(group, meta.index);
                        // Applies queued for the old state must not touch the new one.
                        p.applies.retain(|(g, i, _)| *g != group || *i > meta.index);
                        mach.snapshots.insert(group, (meta.index, Bytes::from(staged)));
                        *self.faults.entry("snapshot-installs").or_insert(0) += 1;
                        Some(RaftInput::SnapshotInstalled { meta })
                    }
                    Err(_) => Some(RaftInput::SnapshotRejected { meta }),
                }
            }
            _ => None,
        }
    }
}
