//! Replicated vector-engine commands from untrusted log bytes.
//!
//! Every replica decodes the same log bytes with `wire::decode::<Command>` and applies them; the
//! engine promises that decoding never panics, that a rejected command changes nothing, and that
//! application is deterministic (replicas stay byte-identical). The input is a sequence of
//! length-prefixed command encodings applied to two engines that start with two collections (so
//! point commands find a target without first having to guess a valid create), checking after
//! each: equal outcomes and digests on both replicas, an unchanged digest after a rejection,
//! re-encoding stability, and that searches and counts over the result do not panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vecraft_core::vector::collection::{CollectionConfig, Distance, SearchRequest};
use vecraft_core::vector::engine::{Command, VectorEngine};
use vecraft_core::wire;

fn engine() -> VectorEngine {
    let mut e = VectorEngine::new();
    for (name, dim, distance) in [("a", 2, Distance::Dot), ("b", 3, Distance::Cosine)] {
        let config = CollectionConfig::new(dim, distance);
        e.apply(Command::CreateCollection { name: name.into(), config }).expect("fresh collection");
    }
    e
}

fuzz_target!(|data: &[u8]| {
    let (mut one, mut two) = (engine(), engine());
    let mut rest = data;
    let mut applied = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (frame, tail) = tail.split_at(n);
        rest = tail;
        let Ok(command) = wire::decode::<Command>(frame) else { continue };
        // Whatever decodes re-encodes stably (bytes compare, so NaN coordinates are fine).
        let bytes = wire::encode(&command).expect("decoded commands encode");
        let again = wire::decode::<Command>(&bytes).expect("re-encoded command decodes");
        assert_eq!(wire::encode(&again).expect("encodes"), bytes, "encoding is not stable");
        let before = one.digest();
        let r1 = one.apply(command);
        let r2 = two.apply(again);
        assert_eq!(format!("{r1:?}"), format!("{r2:?}"), "replicas disagree on the outcome");
        assert_eq!(one.digest(), two.digest(), "replicas diverged");
        if r1.is_err() {
            assert_eq!(one.digest(), before, "a rejected command changed the engine");
        }
        applied += 1;
        if applied >= 32 {
            break;
        }
    }
    for name in one.collection_names().map(str::to_string).collect::<Vec<_>>() {
        let c = one.collection(&name).expect("listed");
        let dim = c.config().vector_size as usize;
        let mut request = SearchRequest::new(vec![0.5; dim], 3);
        let approx = c.search(&request).expect("a well-formed search succeeds");
        request.exact = true;
        let exact = c.search(&request).expect("a well-formed search succeeds");
        assert!(approx.len() <= 3 && exact.len() <= 3);
        assert_eq!(exact.len(), c.len().min(3), "exact search returns min(limit, points)");
        let _ = c.count(None);
    }
});
