//! Where two sets of read models differ, named by the path to each difference
//! (`secrets.live[...].access_count`): what `keyward verify --snapshots` reports when a
//! snapshot disagrees with a fold of the log, so a projection bug shows up by name.

use ciborium::Value;
use projections::ReadModels;

/// Up to `limit` paths at which `expected` and `found` differ; empty if they are equal.
pub fn differences(expected: &ReadModels, found: &ReadModels, limit: usize) -> Vec<String> {
    let (Ok(expected), Ok(found)) = (Value::serialized(expected), Value::serialized(found)) else {
        return vec!["(the models do not serialize)".to_owned()];
    };
    let mut paths = Vec::new();
    walk(
        &canonical(expected),
        &canonical(found),
        &mut String::new(),
        &mut paths,
        limit,
    );
    paths
}

/// The value with every map's entries in the order of their keys' encoding, so that two
/// maps holding the same entries in another order compare equal entry by entry.
fn canonical(value: Value) -> Value {
    match value {
        Value::Map(entries) => {
            let mut entries: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(key, value)| (encoded(&key), canonical(key), canonical(value)))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(entries.into_iter().map(|(_, key, value)| (key, value)).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Tag(tag, inner) => Value::Tag(tag, Box::new(canonical(*inner))),
        other => other,
    }
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    // A Value always encodes into memory.
    let _ = ciborium::into_writer(value, &mut bytes);
    bytes
}

fn walk(expected: &Value, found: &Value, path: &mut String, paths: &mut Vec<String>, limit: usize) {
    if paths.len() >= limit || expected == found {
        return;
    }
    match (expected, found) {
        (Value::Map(expected), Value::Map(found)) => {
            // Both are canonical: a merge of two lists sorted by encoded key.
            let (mut left, mut right) = (expected.iter().peekable(), found.iter().peekable());
            while paths.len() < limit {
                let mark = path.len();
                match (left.peek(), right.peek()) {
                    (None, None) => return,
                    (Some((a, _)), Some((b, _))) if encoded(a) == encoded(b) => {
                        if let (Some((key, a)), Some((_, b))) = (left.next(), right.next()) {
                            push_key(path, key);
                            walk(a, b, path, paths, limit);
                        }
                    }
                    (Some((a, _)), Some((b, _))) if encoded(a) > encoded(b) => {
                        push_key(path, b);
                        paths.push(format!("{path}: only in the snapshot"));
                        right.next();
                    }
                    (Some((a, _)), _) => {
                        push_key(path, a);
                        paths.push(format!("{path}: only in the fold of the log"));
                        left.next();
                    }
                    (None, Some((b, _))) => {
                        push_key(path, b);
                        paths.push(format!("{path}: only in the snapshot"));
                        right.next();
                    }
                }
                path.truncate(mark);
            }
        }
        (Value::Array(expected), Value::Array(found)) if expected.len() == found.len() => {
            for (index, (a, b)) in expected.iter().zip(found).enumerate() {
                let mark = path.len();
                path.push_str(&format!("[{index}]"));
                walk(a, b, path, paths, limit);
                path.truncate(mark);
            }
        }
        _ => paths.push(format!(
            "{path}: {} in the fold of the log, {} in the snapshot",
            show(expected),
            show(found)
        )),
    }
}

/// A struct's field as `.name`, any other key as `[key]`.
fn push_key(path: &mut String, key: &Value) {
    match key {
        Value::Text(name) if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            path.push('.');
            path.push_str(name);
        }
        other => {
            path.push('[');
            path.push_str(&show(other));
            path.push(']');
        }
    }
}

/// A short rendering of a value: scalars in full, collections by their size.
fn show(value: &Value) -> String {
    match value {
        Value::Integer(n) => i128::from(*n).to_string(),
        Value::Text(text) => format!("{text:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Null => "none".to_owned(),
        Value::Float(f) => f.to_string(),
        Value::Bytes(bytes) => format!("0x{}", hex::encode(bytes)),
        Value::Array(items) => format!("a list of {}", items.len()),
        Value::Map(entries) => format!("a map of {}", entries.len()),
        Value::Tag(_, inner) => show(inner),
        _ => "a value".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_models_have_no_differences() {
        assert!(differences(&ReadModels::default(), &ReadModels::default(), 10).is_empty());
    }
}
