//! Planning one group commit: which of the queued appends fit their expected versions,
//! and the positions, versions, timestamps and chain hashes of the events they add.
//! Pure, so the rules are the same for every backend.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{RecordedEvent, StreamId, chain::HashedFields};

use super::{AppendError, Appended, LogHead, StoreError, StreamAppend};

/// One caller's append, waiting in the writer's queue: one or more streams, written all
/// together or not at all.
#[derive(Debug)]
pub struct PendingAppend {
    pub parts: Vec<StreamAppend>,
}

impl PendingAppend {
    pub fn event_count(&self) -> usize {
        self.parts.iter().map(|part| part.events.len()).sum()
    }
}

#[derive(Debug)]
pub struct BatchPlan {
    /// Rows to insert, in position order.
    pub rows: Vec<RecordedEvent>,
    /// One outcome per pending append, in queue order.
    pub outcomes: Vec<Result<Appended, AppendError>>,
    /// The head after the batch commits.
    pub head: LogHead,
}

/// The distinct streams a batch touches, whose stored versions `plan` needs.
pub fn streams_touched(appends: &[PendingAppend]) -> Vec<String> {
    let mut streams: Vec<String> = appends
        .iter()
        .flat_map(|a| &a.parts)
        .map(|part| part.stream.as_str().to_owned())
        .collect();
    streams.sort_unstable();
    streams.dedup();
    streams
}

/// Collects the `(stream id, version)` rows a backend read for [`streams_touched`]; a
/// stream without events has no version.
pub fn stored_versions<E: Into<StoreError>>(
    rows: impl Iterator<Item = Result<(String, Option<i64>), E>>,
) -> Result<HashMap<StreamId, u64>, StoreError> {
    let mut versions = HashMap::new();
    for row in rows {
        let (stream, Some(version)) = row.map_err(Into::into)? else {
            continue;
        };
        let corrupt = |reason: String| StoreError::Corrupt { position: 0, reason };
        let stream = StreamId::parse(stream).map_err(|e| corrupt(format!("stored stream id: {e}")))?;
        let version = u64::try_from(version).map_err(|_| corrupt(format!("negative version in stream {stream}")))?;
        versions.insert(stream, version);
    }
    Ok(versions)
}

/// Plans a batch on top of `head`. `stream_versions` holds the stored version of every
/// stream the batch touches (absent means the stream does not exist). Appends are
/// decided in queue order, each seeing the versions the earlier ones produced.
pub fn plan(
    head: LogHead,
    mut stream_versions: HashMap<StreamId, u64>,
    appends: Vec<PendingAppend>,
    now: DateTime<Utc>,
) -> BatchPlan {
    // Stored timestamps have microsecond precision and never go backwards along the log,
    // which is what lets point-in-time reads stop at the first later event.
    let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let recorded_at = head.recorded_at.map_or(now, |last| last.max(now));

    let mut rows = Vec::with_capacity(appends.iter().map(PendingAppend::event_count).sum());
    let mut outcomes = Vec::with_capacity(appends.len());
    let mut position = head.position;
    let mut prev_hash = head.hash;

    for append in appends {
        if let Some(conflict) = first_conflict(&append.parts, &stream_versions) {
            outcomes.push(Err(conflict));
            continue;
        }
        let mut versions_after = Vec::with_capacity(append.parts.len());
        for part in append.parts {
            let mut version = stream_versions.get(&part.stream).copied().unwrap_or(0);
            for event in part.events {
                position += 1;
                version += 1;
                let hash = HashedFields {
                    prev_hash: &prev_hash,
                    position,
                    event_id: &event.event_id,
                    stream_id: part.stream.as_str(),
                    stream_version: version,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    payload: &event.payload,
                    metadata: &event.metadata,
                    recorded_at_micros: recorded_at.timestamp_micros(),
                }
                .hash();
                rows.push(RecordedEvent {
                    position,
                    event_id: event.event_id,
                    stream_id: part.stream.clone(),
                    stream_version: version,
                    event_type: event.event_type,
                    schema_version: event.schema_version,
                    payload: event.payload,
                    metadata: event.metadata,
                    recorded_at,
                    prev_hash,
                    hash,
                });
                prev_hash = hash;
            }
            stream_versions.insert(part.stream, version);
            versions_after.push(version);
        }
        outcomes.push(Ok(Appended {
            stream_versions: versions_after,
            position,
        }));
    }

    let head = if rows.is_empty() {
        head
    } else {
        LogHead {
            position,
            hash: prev_hash,
            recorded_at: Some(recorded_at),
        }
    };
    BatchPlan { rows, outcomes, head }
}

/// The first part of an append whose stream is not at the version it expects, taking the
/// earlier parts of the same append into account.
fn first_conflict(parts: &[StreamAppend], stored: &HashMap<StreamId, u64>) -> Option<AppendError> {
    let mut after_earlier_parts: HashMap<&StreamId, u64> = HashMap::new();
    for part in parts {
        let current = after_earlier_parts
            .get(&part.stream)
            .or_else(|| stored.get(&part.stream))
            .copied()
            .unwrap_or(0);
        if !part.expected.admits(current) {
            return Some(AppendError::WrongExpectedVersion {
                stream: part.stream.clone(),
                expected: part.expected,
                actual: current,
            });
        }
        after_earlier_parts.insert(&part.stream, current + part.events.len() as u64);
    }
    None
}

#[cfg(test)]
mod tests {
    use domain::{ChainHash, ChainVerifier, ExpectedVersion, Metadata, NewEvent};

    use super::*;

    fn part(stream: &str, expected: ExpectedVersion, count: usize) -> StreamAppend {
        let metadata = Metadata::system(DateTime::UNIX_EPOCH);
        StreamAppend {
            stream: StreamId::parse(stream).unwrap(),
            expected,
            events: (0..count)
                .map(|n| NewEvent::new("test.happened", 1, &n, &metadata).unwrap())
                .collect(),
        }
    }

    fn append(stream: &str, expected: ExpectedVersion, count: usize) -> PendingAppend {
        PendingAppend {
            parts: vec![part(stream, expected, count)],
        }
    }

    fn versions(pairs: &[(&str, u64)]) -> HashMap<StreamId, u64> {
        pairs.iter().map(|(s, v)| (StreamId::parse(*s).unwrap(), *v)).collect()
    }

    #[test]
    fn appends_in_one_batch_see_each_others_versions() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let plan = plan(
            LogHead::default(),
            versions(&[]),
            vec![
                append("a-1", ExpectedVersion::NoStream, 2),
                append("a-1", ExpectedVersion::NoStream, 1),
                append("a-1", ExpectedVersion::Exact(2), 1),
                append("b-1", ExpectedVersion::Any, 1),
            ],
            now,
        );
        let outcomes: Vec<_> = plan
            .outcomes
            .iter()
            .map(|o| {
                o.as_ref()
                    .map(|a| (a.stream_versions.clone(), a.position))
                    .map_err(|e| e.to_string())
            })
            .collect();
        assert_eq!(outcomes[0], Ok((vec![2], 2)));
        assert!(outcomes[1].as_ref().unwrap_err().contains("is at version 2"));
        assert_eq!(outcomes[2], Ok((vec![3], 3)));
        assert_eq!(outcomes[3], Ok((vec![1], 4)));
        assert_eq!(
            plan.rows.iter().map(|r| r.position).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(plan.head.position, 4);
        assert_eq!(plan.head.hash, plan.rows[3].hash);
    }

    #[test]
    fn a_multi_stream_append_is_written_whole_or_not_at_all() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let both = PendingAppend {
            parts: vec![
                part("user-1", ExpectedVersion::NoStream, 1),
                part("email-x", ExpectedVersion::NoStream, 1),
            ],
        };
        let clashing = PendingAppend {
            parts: vec![
                part("user-2", ExpectedVersion::NoStream, 1),
                part("email-x", ExpectedVersion::NoStream, 1),
            ],
        };
        let same_stream_twice = PendingAppend {
            parts: vec![
                part("org-1", ExpectedVersion::NoStream, 2),
                part("org-1", ExpectedVersion::Exact(2), 1),
            ],
        };
        let plan = plan(
            LogHead::default(),
            versions(&[]),
            vec![both, clashing, same_stream_twice],
            now,
        );

        let appended = plan.outcomes[0].as_ref().unwrap();
        assert_eq!((appended.stream_versions.clone(), appended.position), (vec![1, 1], 2));
        match &plan.outcomes[1] {
            Err(AppendError::WrongExpectedVersion { stream, actual: 1, .. }) => assert_eq!(stream.as_str(), "email-x"),
            other => panic!("expected a conflict on email-x, got {other:?}"),
        }
        let appended = plan.outcomes[2].as_ref().unwrap();
        assert_eq!((appended.stream_versions.clone(), appended.position), (vec![2, 3], 5));
        let streams: Vec<_> = plan.rows.iter().map(|r| r.stream_id.as_str()).collect();
        assert_eq!(
            streams,
            vec!["user-1", "email-x", "org-1", "org-1", "org-1"],
            "nothing of user-2 was written"
        );
    }

    #[test]
    fn planned_rows_form_a_valid_chain_continuing_the_head() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let first = plan(
            LogHead::default(),
            versions(&[]),
            vec![append("a-1", ExpectedVersion::Any, 3)],
            now,
        );
        let second = plan(
            first.head,
            versions(&[("a-1", 3)]),
            vec![append("a-1", ExpectedVersion::Exact(3), 2)],
            now,
        );
        let mut verifier = ChainVerifier::new();
        for row in first.rows.iter().chain(&second.rows) {
            verifier.check(row).unwrap();
        }
        assert_eq!(verifier.finish(second.head.position), Ok(5));
        assert_eq!(first.rows[0].prev_hash, ChainHash::GENESIS);
    }

    #[test]
    fn recorded_time_never_goes_backwards() {
        let later = DateTime::from_timestamp(2_000, 0).unwrap();
        let earlier = DateTime::from_timestamp(1_000, 0).unwrap();
        let head = LogHead {
            position: 0,
            hash: ChainHash::GENESIS,
            recorded_at: Some(later),
        };
        let plan = plan(
            head,
            versions(&[]),
            vec![append("a-1", ExpectedVersion::Any, 1)],
            earlier,
        );
        assert_eq!(plan.rows[0].recorded_at, later);
    }

    #[test]
    fn a_rejected_batch_leaves_the_head_unchanged() {
        let head = LogHead {
            position: 7,
            hash: ChainHash([1; 32]),
            recorded_at: None,
        };
        let plan = plan(
            head,
            versions(&[("a-1", 1)]),
            vec![append("a-1", ExpectedVersion::NoStream, 1)],
            DateTime::UNIX_EPOCH,
        );
        assert!(plan.rows.is_empty());
        assert_eq!(plan.head, head);
    }
}
