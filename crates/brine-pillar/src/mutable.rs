//! Python's mutable lists and dicts for pillar templates.
//!
//! Salt templates build values in place (`{% do users.append(u) %}`,
//! `{% do cfg.update({...}) %}`), which minijinja's immutable values
//! cannot do. Every `{% set name = expr %}` is rewritten to wrap `expr` in
//! `__mut(...)` (see `jinja::salt_tags`), which turns the plain lists and
//! dicts in it (deeply) into the shared, mutable [`MutList`]/[`MutMap`]
//! here; an already-mutable value is kept, so `{% set b = a %}` aliases as
//! in Python. Values that never went through a `set` (grains, loop
//! variables over literals, macro arguments) stay immutable.

use std::sync::{Arc, Mutex, MutexGuard};

use indexmap::IndexMap;
use minijinja::value::{from_args, Enumerator, Kwargs, Object, ObjectRepr, Value as Mj, ValueKind};
use minijinja::{Error, ErrorKind, State};

fn err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Python list.
#[derive(Debug, Default)]
pub struct MutList(Mutex<Vec<Mj>>);

/// A Python dict (insertion-ordered).
#[derive(Debug, Default)]
pub struct MutMap(Mutex<IndexMap<Mj, Mj>>);

/// `__mut(value)`: plain lists and dicts, at any depth, made mutable.
pub fn mutable(v: Mj) -> Mj {
    if v.downcast_object_ref::<MutList>().is_some() || v.downcast_object_ref::<MutMap>().is_some() {
        return v;
    }
    if let Some(items) = v.downcast_object_ref::<Vec<Mj>>() {
        return Mj::from_object(MutList(Mutex::new(items.iter().cloned().map(mutable).collect())));
    }
    if let Some(map) = v.downcast_object_ref::<IndexMap<Mj, Mj>>() {
        return Mj::from_object(MutMap(Mutex::new(
            map.iter().map(|(k, x)| (k.clone(), mutable(x.clone()))).collect(),
        )));
    }
    v
}

fn index(len: usize, i: i64) -> Option<usize> {
    let idx = if i < 0 { len as i64 + i } else { i };
    usize::try_from(idx).ok().filter(|&n| n < len)
}

impl Object for MutList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        let v = lock(&self.0);
        v.get(index(v.len(), key.as_i64()?)?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        !lock(&self.0).is_empty()
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Mj]) -> Result<Mj, Error> {
        let none = Mj::from(());
        match method {
            "append" => {
                let (x,): (Mj,) = from_args(args)?;
                lock(&self.0).push(mutable(x));
                Ok(none)
            }
            "extend" => {
                let (x,): (Mj,) = from_args(args)?;
                let items: Vec<Mj> = x.try_iter()?.map(mutable).collect();
                lock(&self.0).extend(items);
                Ok(none)
            }
            "insert" => {
                let (i, x): (i64, Mj) = from_args(args)?;
                let mut v = lock(&self.0);
                let len = v.len() as i64;
                let at = if i < 0 { (len + i).max(0) } else { i.min(len) };
                v.insert(at as usize, mutable(x));
                Ok(none)
            }
            "pop" => {
                let (i,): (Option<i64>,) = from_args(args)?;
                let mut v = lock(&self.0);
                if v.is_empty() {
                    return Err(err("pop from empty list"));
                }
                let at = index(v.len(), i.unwrap_or(-1)).ok_or_else(|| err("pop index out of range"))?;
                Ok(v.remove(at))
            }
            "remove" => {
                let (x,): (Mj,) = from_args(args)?;
                let mut v = lock(&self.0);
                let at = v
                    .iter()
                    .position(|y| *y == x)
                    .ok_or_else(|| err("list.remove(x): x not in list"))?;
                v.remove(at);
                Ok(none)
            }
            "clear" => {
                let _: () = from_args(args)?;
                lock(&self.0).clear();
                Ok(none)
            }
            "reverse" => {
                let _: () = from_args(args)?;
                lock(&self.0).reverse();
                Ok(none)
            }
            "sort" => {
                let (kw,): (Kwargs,) = from_args(args)?;
                let reverse = kw.get::<Option<bool>>("reverse")?.unwrap_or(false);
                kw.assert_all_used()?;
                let mut v = lock(&self.0);
                v.sort();
                if reverse {
                    v.reverse();
                }
                Ok(none)
            }
            "index" => {
                let (x,): (Mj,) = from_args(args)?;
                let v = lock(&self.0);
                v.iter()
                    .position(|y| *y == x)
                    .map(Mj::from)
                    .ok_or_else(|| err("x is not in list"))
            }
            "count" => {
                let (x,): (Mj,) = from_args(args)?;
                Ok(Mj::from(lock(&self.0).iter().filter(|y| **y == x).count()))
            }
            "copy" => {
                let _: () = from_args(args)?;
                Ok(Mj::from_object(MutList(Mutex::new(lock(&self.0).clone()))))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

impl MutMap {
    fn insert_all(&self, other: &Mj) -> Result<(), Error> {
        let pairs: Vec<(Mj, Mj)> = match other.kind() {
            ValueKind::Map => other
                .try_iter()?
                .map(|k| {
                    let v = other.get_item(&k).unwrap_or(Mj::UNDEFINED);
                    (k, v)
                })
                .collect(),
            _ => {
                let mut out = Vec::new();
                for pair in other.try_iter()? {
                    let kv: Vec<Mj> = pair.try_iter()?.collect();
                    match kv.as_slice() {
                        [k, v] => out.push((k.clone(), v.clone())),
                        _ => return Err(err("dictionary update sequence element has wrong length")),
                    }
                }
                out
            }
        };
        let mut m = lock(&self.0);
        for (k, v) in pairs {
            m.insert(k, mutable(v));
        }
        Ok(())
    }
}

impl Object for MutMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Mj) -> Option<Mj> {
        lock(&self.0).get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(lock(&self.0).keys().cloned().collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(lock(&self.0).len())
    }

    fn is_true(self: &Arc<Self>) -> bool {
        !lock(&self.0).is_empty()
    }

    fn call_method(self: &Arc<Self>, _state: &mut State<'_, '_>, method: &str, args: &[Mj]) -> Result<Mj, Error> {
        let none = Mj::from(());
        match method {
            "update" => {
                let (pos, kw) = match args.split_last() {
                    Some((last, rest)) if last.is_kwargs() => (rest, Some(Kwargs::try_from(last.clone())?)),
                    _ => (args, None),
                };
                if pos.len() > 1 {
                    return Err(err(format!("update expected at most 1 argument, got {}", pos.len())));
                }
                if let Some(other) = pos.first() {
                    self.insert_all(other)?;
                }
                if let Some(kw) = kw {
                    let mut m = lock(&self.0);
                    for k in kw.args() {
                        m.insert(Mj::from(k), mutable(kw.get::<Mj>(k)?));
                    }
                }
                Ok(none)
            }
            "setdefault" => {
                let (k, d): (Mj, Option<Mj>) = from_args(args)?;
                let mut m = lock(&self.0);
                Ok(m.entry(k).or_insert_with(|| mutable(d.unwrap_or(Mj::from(())))).clone())
            }
            "pop" => {
                let (k, d): (Mj, Option<Mj>) = from_args(args)?;
                let mut m = lock(&self.0);
                match (m.shift_remove(&k), d) {
                    (Some(v), _) => Ok(v),
                    (None, Some(d)) => Ok(d),
                    (None, None) => Err(err(format!("KeyError: {k}"))),
                }
            }
            "popitem" => {
                let _: () = from_args(args)?;
                let mut m = lock(&self.0);
                let (k, v) = m.pop().ok_or_else(|| err("popitem(): dictionary is empty"))?;
                Ok(Mj::from(vec![k, v]))
            }
            "clear" => {
                let _: () = from_args(args)?;
                lock(&self.0).clear();
                Ok(none)
            }
            "copy" => {
                let _: () = from_args(args)?;
                Ok(Mj::from_object(MutMap(Mutex::new(lock(&self.0).clone()))))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
