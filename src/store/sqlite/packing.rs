//! Events packed for disk (docs/cost.md, "Disk"; migration 0005): an event's payload and
//! metadata, compressed together with zstd against a dictionary made of the log's own
//! recent events.
//!
//! Most of an audited read's JSON is what the reads before it also carried: the field
//! names, and the ids of the secret, vault, agent and org. Compressed alone, those ids are
//! random digits that no coder shrinks much; against recent events they are a few bytes'
//! reference each. So the writer keeps the latest event of each of a bounded number of
//! streams, and every [`EVENTS_PER_DICTIONARY`] events stores their concatenation as a new
//! dictionary, named by every event packed with it. Dictionaries are only ever added: an
//! event stays readable with the one it names.
//!
//! A packed event is a blob:
//!
//! ```text
//! varint  dictionary id (0: none)
//! varint  payload length in bytes
//! varint  metadata length in bytes
//! bytes   zstd frame of payload then metadata: magicless, no checksum, no sizes
//! ```
//!
//! The chain hashes the JSON, not these bytes, so packing changes no hash, and a changed
//! blob is caught by the hash of what it unpacks to, or fails to unpack.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rusqlite::OptionalExtension;
use zstd::zstd_safe::{self, CCtx, CDict, CParameter, DCtx, DDict, DParameter, FrameFormat};

use crate::store::StoreError;

/// zstd's level: higher levels cost more time for a few bytes on events this small.
const LEVEL: i32 = 3;
/// Events packed with one dictionary before the next is made from the events before it.
const EVENTS_PER_DICTIONARY: u64 = 50_000;
/// Events packed with none before the first is made: a new log soon gets one.
const EVENTS_BEFORE_FIRST_DICTIONARY: u64 = 1_000;
/// Streams whose latest event goes into the next dictionary, and the dictionary's size.
/// What a decision's working set of ids (agents, secrets, vaults, orgs) fits in, no more:
/// a bigger dictionary costs every reader's cache and every new dictionary's build.
const DICTIONARY_STREAMS: usize = 256;
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Dictionaries a reader keeps prepared; a replay goes through them in order.
const PREPARED_DICTIONARIES: usize = 16;

/// The writer's side: packs events, and makes a new dictionary when one is due.
pub(super) struct Packer {
    context: CCtx<'static>,
    dictionary: Option<(i64, CDict<'static>)>,
    packed_since_dictionary: u64,
    /// The latest payload and metadata of each of the streams written to last, oldest
    /// first: the next dictionary's content.
    recent: VecDeque<(i64, Vec<u8>)>,
}

impl Packer {
    /// A packer that goes on with the newest dictionary in `connection`'s log.
    pub(super) fn load(connection: &rusqlite::Connection) -> Result<Self, StoreError> {
        let newest: Option<(i64, Vec<u8>)> = connection
            .query_row(
                "SELECT id, content FROM event_dictionaries ORDER BY id DESC LIMIT 1",
                (),
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let mut context = CCtx::create();
        for parameter in [
            CParameter::Format(FrameFormat::Magicless),
            CParameter::ContentSizeFlag(false),
            CParameter::ChecksumFlag(false),
            CParameter::DictIdFlag(false),
            CParameter::CompressionLevel(LEVEL),
        ] {
            context.set_parameter(parameter).map_err(zstd_failed)?;
        }
        Ok(Self {
            context,
            dictionary: newest.map(|(id, content)| (id, CDict::create(&content, LEVEL))),
            packed_since_dictionary: 0,
            recent: VecDeque::new(),
        })
    }

    /// Makes and stores a new dictionary from the recent events, if one is due: to be
    /// called inside the transaction that then packs with it.
    pub(super) fn renew_dictionary(&mut self, transaction: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let due = match self.dictionary {
            None => EVENTS_BEFORE_FIRST_DICTIONARY,
            Some(_) => EVENTS_PER_DICTIONARY,
        };
        if self.packed_since_dictionary < due || self.recent.is_empty() {
            return Ok(());
        }
        let content = self.dictionary_content();
        let id: i64 = transaction
            .prepare_cached("INSERT INTO event_dictionaries (content) VALUES (?1) RETURNING id")?
            .query_row([&content], |row| row.get(0))?;
        self.dictionary = Some((id, CDict::create(&content, LEVEL)));
        self.packed_since_dictionary = 0;
        Ok(())
    }

    /// The recent events, newest last, where zstd's nearest matches are cheapest, cut to
    /// [`DICTIONARY_BYTES`] from the newest back.
    fn dictionary_content(&self) -> Vec<u8> {
        let mut taken = 0;
        let newest_first: Vec<&[u8]> = self
            .recent
            .iter()
            .rev()
            .map(|(_, body)| body.as_slice())
            .take_while(|body| {
                taken += body.len();
                taken <= DICTIONARY_BYTES
            })
            .collect();
        newest_first.into_iter().rev().flatten().copied().collect()
    }

    /// `payload` and `metadata` of an event of the stream numbered `stream`, packed.
    pub(super) fn pack(&mut self, stream: i64, payload: &str, metadata: &str) -> Result<Vec<u8>, StoreError> {
        let mut body = Vec::with_capacity(payload.len() + metadata.len());
        body.extend_from_slice(payload.as_bytes());
        body.extend_from_slice(metadata.as_bytes());

        let dictionary_id = match &self.dictionary {
            Some((id, dictionary)) => {
                self.context.ref_cdict(dictionary).map_err(zstd_failed)?;
                *id
            }
            None => {
                self.context.load_dictionary(&[]).map_err(zstd_failed)?;
                0
            }
        };
        // zstd writes a Vec from its start: the frame goes after the header by a copy.
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(body.len()));
        self.context.compress2(&mut frame, &body).map_err(zstd_failed)?;
        let mut packed = Vec::with_capacity(3 * 10 + frame.len());
        for number in [dictionary_id as u64, payload.len() as u64, metadata.len() as u64] {
            put_varint(&mut packed, number);
        }
        packed.extend_from_slice(&frame);
        self.packed_since_dictionary += 1;
        self.remember(stream, body);
        Ok(packed)
    }

    fn remember(&mut self, stream: i64, body: Vec<u8>) {
        if let Some(at) = self.recent.iter().position(|(kept, _)| *kept == stream) {
            self.recent.remove(at);
        } else if self.recent.len() == DICTIONARY_STREAMS {
            self.recent.pop_front();
        }
        self.recent.push_back((stream, body));
    }
}

/// A reader's side: unpacks events, with the dictionaries they name prepared once and
/// shared by every reader of the log.
pub(super) struct Unpacker {
    context: DCtx<'static>,
    dictionaries: Dictionaries,
}

/// Dictionaries prepared for unpacking, by id: the last [`PREPARED_DICTIONARIES`] used.
#[derive(Clone, Default)]
pub(super) struct Dictionaries(Arc<Mutex<HashMap<i64, Arc<DDict<'static>>>>>);

impl Dictionaries {
    fn get(&self, connection: &rusqlite::Connection, id: i64) -> Result<Arc<DDict<'static>>, Unpacking> {
        let prepared = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&id)
            .cloned();
        if let Some(dictionary) = prepared {
            return Ok(dictionary);
        }
        let content: Option<Vec<u8>> = connection
            .prepare_cached("SELECT content FROM event_dictionaries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?;
        let content =
            content.ok_or_else(|| Unpacking::Corrupt(format!("it names dictionary {id}, which the log lacks")))?;
        let dictionary = Arc::new(DDict::create(&content));
        let mut prepared = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if prepared.len() >= PREPARED_DICTIONARIES {
            // The oldest: a replay is done with it, and live reads use the newest.
            if let Some(oldest) = prepared.keys().min().copied() {
                prepared.remove(&oldest);
            }
        }
        prepared.insert(id, dictionary.clone());
        Ok(dictionary)
    }
}

impl Unpacker {
    pub(super) fn new(dictionaries: Dictionaries) -> Result<Self, StoreError> {
        let mut context = DCtx::create();
        context
            .set_parameter(DParameter::Format(FrameFormat::Magicless))
            .map_err(zstd_failed)?;
        Ok(Self { context, dictionaries })
    }

    /// The payload and metadata packed in `packed`, the event at `position`; `connection`
    /// is the log's, where a dictionary not yet prepared is read.
    pub(super) fn unpack(
        &mut self,
        connection: &rusqlite::Connection,
        position: i64,
        packed: &[u8],
    ) -> Result<(String, String), StoreError> {
        self.try_unpack(connection, packed).map_err(|failure| match failure {
            Unpacking::Store(error) => error,
            Unpacking::Corrupt(reason) => StoreError::Corrupt {
                position,
                reason: format!("its packed payload and metadata do not unpack: {reason}"),
            },
        })
    }

    fn try_unpack(&mut self, connection: &rusqlite::Connection, packed: &[u8]) -> Result<(String, String), Unpacking> {
        let cut_short = || Unpacking::Corrupt("its header is cut short".into());
        let mut rest = packed;
        let dictionary_id = take_varint(&mut rest).ok_or_else(cut_short)?;
        let payload_len = take_varint(&mut rest).ok_or_else(cut_short)?;
        let metadata_len = take_varint(&mut rest).ok_or_else(cut_short)?;
        let total = usize::try_from(payload_len.saturating_add(metadata_len))
            .ok()
            .filter(|total| *total <= MAX_UNPACKED)
            .ok_or_else(|| Unpacking::Corrupt("it claims more bytes than an event holds".into()))?;
        let dictionary = match i64::try_from(dictionary_id) {
            Ok(0) => None,
            Ok(id) => Some(self.dictionaries.get(connection, id)?),
            Err(_) => return Err(Unpacking::Corrupt(format!("it names dictionary {dictionary_id}"))),
        };
        match &dictionary {
            Some(dictionary) => self.context.ref_ddict(dictionary),
            None => self.context.load_dictionary(&[]),
        }
        .map_err(|code| Unpacking::Store(zstd_failed(code)))?;
        let mut body = Vec::with_capacity(total);
        let written = self
            .context
            .decompress(&mut body, rest)
            .map_err(|code| Unpacking::Corrupt(format!("zstd: {}", zstd_safe::get_error_name(code))))?;
        if written != total {
            return Err(Unpacking::Corrupt(format!(
                "it unpacks to {written} bytes, not {total}"
            )));
        }
        let metadata = body.split_off(payload_len as usize);
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| Unpacking::Corrupt("it is not UTF-8".into()));
        Ok((text(body)?, text(metadata)?))
    }
}

/// Why an event did not unpack: the store failed, or the stored bytes are not a packed event.
enum Unpacking {
    Store(StoreError),
    Corrupt(String),
}

impl From<rusqlite::Error> for Unpacking {
    fn from(error: rusqlite::Error) -> Self {
        Self::Store(error.into())
    }
}

/// No event's payload and metadata come near this; a header claiming more is corrupt.
const MAX_UNPACKED: usize = 64 * 1024 * 1024;

fn put_varint(out: &mut Vec<u8>, mut number: u64) {
    while number >= 0x80 {
        out.push((number as u8) | 0x80);
        number >>= 7;
    }
    out.push(number as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut number = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        number |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(number);
        }
    }
    None
}

fn zstd_failed(code: usize) -> StoreError {
    StoreError::Compression(zstd_safe::get_error_name(code).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> rusqlite::Connection {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection
            .execute_batch(include_str!("../../../migrations/sqlite/0005_packed_events.sql"))
            .unwrap();
        connection
    }

    fn read(n: u64) -> (String, String) {
        (
            format!(
                r#"{{"type":"secret.read","secret_id":"5f0c-{n}","path":"app/db","by":{{"type":"agent","id":"a1"}}}}"#
            ),
            format!(r#"{{"actor_type":"agent","actor_id":"a1","timestamp":"2026-12-06T07:00:{n:02}Z"}}"#),
        )
    }

    #[test]
    fn what_is_packed_unpacks_as_it_was_with_and_without_a_dictionary() {
        let mut connection = log();
        let mut packer = Packer::load(&connection).unwrap();
        let mut unpacker = Unpacker::new(Dictionaries::default()).unwrap();
        let mut packed = Vec::new();
        for n in 0..EVENTS_BEFORE_FIRST_DICTIONARY + 10 {
            let transaction = connection.transaction().unwrap();
            packer.renew_dictionary(&transaction).unwrap();
            transaction.commit().unwrap();
            let (payload, metadata) = read(n);
            packed.push((
                packer.pack(n as i64 % 7, &payload, &metadata).unwrap(),
                payload,
                metadata,
            ));
        }
        let dictionaries: i64 = connection
            .query_row("SELECT COUNT(*) FROM event_dictionaries", (), |row| row.get(0))
            .unwrap();
        assert_eq!(dictionaries, 1);
        let (first, last) = (&packed[0].0, &packed[packed.len() - 1].0);
        assert_eq!(
            (first[0], last[0]),
            (0, 1),
            "packed with no dictionary, then with the first"
        );
        assert!(last.len() < first.len() / 2, "{} against {}", last.len(), first.len());
        for (bytes, payload, metadata) in &packed {
            assert_eq!(
                unpacker.unpack(&connection, 1, bytes).unwrap(),
                (payload.clone(), metadata.clone())
            );
        }
        // A new packer, as after a restart, goes on with the stored dictionary.
        let mut restarted = Packer::load(&connection).unwrap();
        let (payload, metadata) = read(99);
        let bytes = restarted.pack(1, &payload, &metadata).unwrap();
        assert_eq!(bytes[0], 1);
        assert_eq!(unpacker.unpack(&connection, 1, &bytes).unwrap(), (payload, metadata));
    }

    #[test]
    fn a_damaged_packed_event_is_an_error_not_a_wrong_event() {
        let connection = log();
        let mut packer = Packer::load(&connection).unwrap();
        let mut unpacker = Unpacker::new(Dictionaries::default()).unwrap();
        let (payload, metadata) = read(1);
        let bytes = packer.pack(1, &payload, &metadata).unwrap();
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 3);
        let mut unknown_dictionary = bytes.clone();
        unknown_dictionary[0] = 9;
        let mut longer = bytes.clone();
        longer[1] += 1;
        for damaged in [cut, unknown_dictionary, longer, vec![0x80], Vec::new()] {
            assert!(
                matches!(
                    unpacker.unpack(&connection, 7, &damaged),
                    Err(StoreError::Corrupt { position: 7, .. })
                ),
                "{damaged:?}"
            );
        }
    }

    #[test]
    fn the_dictionary_holds_the_latest_event_of_each_recent_stream_newest_last() {
        let connection = log();
        let mut packer = Packer::load(&connection).unwrap();
        for n in 0..(DICTIONARY_STREAMS as i64 + 5) {
            packer.pack(n, &format!("p{n}"), "m").unwrap();
        }
        packer.pack(10, "again", "m").unwrap();
        assert_eq!(packer.recent.len(), DICTIONARY_STREAMS);
        let content = String::from_utf8(packer.dictionary_content()).unwrap();
        assert!(content.ends_with("p259mp260magainm"), "{content}");
        assert!(!content.contains("p4m") && !content.contains("p10m"), "{content}");
    }

    #[test]
    fn varints_round_trip() {
        for number in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut bytes = Vec::new();
            put_varint(&mut bytes, number);
            assert_eq!(take_varint(&mut bytes.as_slice()), Some(number));
        }
    }
}
