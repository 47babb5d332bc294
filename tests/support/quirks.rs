//! RosettaSciIO's read quirks applied to an in-memory tree, for tests that compare a tree
//! with the same tree written and read again. Include with
//! `#[path = "support/quirks.rs"] mod quirks;`.

use lazyspy::signal::Value;

/// Quirk Q1 once more: a list stored as a `_list_N_` group (more than 10 items, one of them
/// not homogenizable) is read back in the string order of its indices (`0, 1, 10, 11, 2,
/// ...`), so a list read, written and read again is shuffled a second time.
pub fn q1_again(v: &mut Value) {
    match v {
        Value::Dict(d) => d.iter_mut().for_each(|(_, v)| q1_again(v)),
        Value::List(items) | Value::Tuple(items) => {
            items.iter_mut().for_each(q1_again);
            let group = items.len() > 10
                && items.iter().any(|x| {
                    matches!(
                        x,
                        Value::None | Value::Dict(_) | Value::Signal(_) | Value::List(_)
                    )
                });
            if group {
                let mut idx: Vec<usize> = (0..items.len()).collect();
                idx.sort_by_key(|i| i.to_string());
                *items = idx.into_iter().map(|i| items[i].clone()).collect();
            }
        }
        Value::Signal(s) => {
            for d in [&mut s.metadata, &mut s.original_metadata, &mut s.attributes] {
                d.iter_mut().for_each(|(_, v)| q1_again(v));
            }
        }
        _ => {}
    }
}
