//! The read side of a collection: points by id, scroll pages, counts and searches (brute force,
//! graph walk, or filtered by the payload index, with the id tie-break and rescoring).

use super::*;

impl Collection {
    /// The stored points among `ids`, in request order; ids not stored are skipped.
    pub fn get(&self, ids: &[PointId], with_payload: bool, with_vector: bool) -> Vec<Record> {
        ids.iter()
            .filter_map(|id| {
                self.points.get(id).map(|p| self.record(*id, p, with_payload, with_vector))
            })
            .collect()
    }

    /// A page of points in id order.
    pub fn scroll(&self, request: &ScrollRequest) -> Result<ScrollPage, EngineError> {
        if let Some(filter) = &request.filter {
            filter.validate()?;
        }
        let start = request.offset.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Included);
        let mut matching = self.matching_from(start, request.filter.as_ref());
        let points: Vec<Record> = matching
            .by_ref()
            .take(request.limit)
            .map(|(id, p)| self.record(id, p, request.with_payload, request.with_vector))
            .collect();
        let next_offset = matching.next().map(|(id, _)| id);
        Ok(ScrollPage { points, next_offset })
    }

    /// Number of points, or of points matching `filter`.
    pub fn count(&self, filter: Option<&Filter>) -> Result<usize, EngineError> {
        match filter {
            None => Ok(self.points.len()),
            Some(f) => {
                f.validate()?;
                Ok(self.matching(Some(f)).count())
            }
        }
    }

    /// Top hits for the query, best first, ties broken by ascending id.
    ///
    /// Plan: `exact` brute-forces the stored points. With a filter, matching
    /// points are counted first; if few match (see [`FILTERED_EXACT_MAX_MATCHES`] and
    /// [`FILTERED_EXACT_FRACTION_PERCENT`]) they are brute-forced, otherwise the index searches with
    /// an `accept` callback that admits only live, matching slots. Scores are always recomputed
    /// from the stored vectors, so exact and approximate hits are scored identically.
    pub fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredPoint>, EngineError> {
        let query = self.prepare_vector(request.vector.clone(), VectorOwner::Query)?;
        if let Some(filter) = &request.filter {
            filter.validate()?;
        }
        if let Some(ef) = request.ef
            && !(1..=MAX_HNSW_EF as usize).contains(&ef)
        {
            return Err(EngineError::InvalidRequest(format!("ef {ef} not in 1..={MAX_HNSW_EF}")));
        }
        if let Some(params) = &request.quantization {
            params.validate().map_err(EngineError::InvalidRequest)?;
        }
        let quantization = request.quantization.unwrap_or_default();
        let wanted = request.limit.saturating_add(request.offset).min(self.points.len());
        if request.limit == 0 || wanted == 0 {
            return Ok(Vec::new());
        }
        let distance = self.config.distance;
        let brute_force = |candidates: &mut dyn Iterator<Item = (PointId, &StoredPoint)>| {
            candidates.map(|(id, p)| (id, distance.score(&query, self.vector_of(p)))).collect::<Vec<_>>()
        };
        let mut hits: Vec<(PointId, f32)> = if request.exact {
            brute_force(&mut self.matching(request.filter.as_ref()))
        } else {
            let ef = request.ef.unwrap_or(self.config.hnsw.ef as usize).max(wanted);
            match &request.filter {
                None => {
                    self.index_search(&query, wanted, ef, &quantization, &|slot| self.slot_owner[slot].is_some())
                }
                Some(filter) => {
                    let matched: Vec<(PointId, &StoredPoint)> =
                        self.matching(Some(filter)).collect();
                    let selective = matched.len() <= FILTERED_EXACT_MAX_MATCHES.max(wanted)
                        || matched.len() * 100
                            <= self.points.len() * FILTERED_EXACT_FRACTION_PERCENT;
                    if selective {
                        brute_force(&mut matched.into_iter())
                    } else {
                        let mut accepted = vec![false; self.slot_owner.len()];
                        for (_, p) in &matched {
                            accepted[p.slot] = true;
                        }
                        self.index_search(&query, wanted, ef, &quantization, &|slot| accepted[slot])
                    }
                }
            }
        };
        let order = |a: &(PointId, f32), b: &(PointId, f32)| {
            distance.compare_scores(a.1, b.1).then(a.0.cmp(&b.0))
        };
        if hits.len() > wanted {
            hits.select_nth_unstable_by(wanted - 1, order);
            hits.truncate(wanted);
        }
        hits.sort_unstable_by(order);
        Ok(hits
            .into_iter()
            .skip(request.offset)
            .filter(|(_, score)| {
                request.score_threshold.is_none_or(|t| distance.passes_threshold(*score, t))
            })
            .map(|(id, score)| {
                let p = &self.points[&id];
                ScoredPoint {
                    id,
                    version: p.version,
                    score,
                    payload: request.with_payload.then(|| p.payload.clone()),
                    vector: request.with_vector.then(|| self.vector_of(p).to_vec()),
                }
            })
            .collect())
    }

    /// Asks the index (through the quantized codes when the collection has trained ones and
    /// `quantization` does not ignore them) and maps slots back to live ids with scores
    /// recomputed on the stored vectors: that recomputation is the rescoring of quantized
    /// candidates, and the caller keeps the best `k` of them.
    fn index_search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        quantization: &QuantizationSearchParams,
        accept: &(dyn Fn(Slot) -> bool + Sync),
    ) -> Vec<(PointId, f32)> {
        let hide = self.indexing.hides_unindexed();
        let guarded = |slot: Slot| slot < self.slot_owner.len() && accept(slot) && !(hide && self.index.is_unindexed(slot));
        let on_codes = self.quantized_search(query, k, ef, quantization, &guarded);
        let skip_rescore = on_codes.is_some() && self.quantizer.skips_rescore();
        on_codes
            .unwrap_or_else(|| self.index.search(query, k, ef, &guarded))
            .into_iter()
            .filter_map(|n| {
                let id = self.slot_owner.get(n.slot).copied().flatten();
                debug_assert!(id.is_some(), "index returned rejected slot {}", n.slot);
                id.map(|id| {
                    let score = if skip_rescore {
                        self.code_score(n.distance)
                    } else {
                        self.config.distance.score(query, self.vector_of(&self.points[&id]))
                    };
                    (id, score)
                })
            })
            .collect()
    }
}
