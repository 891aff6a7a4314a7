//! A cursor over JSON objects that tracks the path, the warnings and unknown keys.

use std::cell::RefCell;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::{DeclarationError, Tags};

/// A JSON path under construction, sharing one warnings list with every path derived from
/// the same root (so the parse functions need no extra argument to report a warning).
#[derive(Clone, Debug)]
pub(super) struct Path(String, Rc<RefCell<Vec<String>>>);

impl Path {
    pub(super) fn root() -> Path {
        Path(String::new(), Rc::default())
    }
    pub(super) fn key(&self, k: &str) -> Path {
        if self.0.is_empty() {
            Path(k.to_string(), self.1.clone())
        } else {
            Path(format!("{}.{k}", self.0), self.1.clone())
        }
    }
    pub(super) fn idx(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0), self.1.clone())
    }
    pub(super) fn err(&self, message: impl Into<String>) -> DeclarationError {
        err(&self.to_string(), message.into())
    }
    /// Records a warning about this path (the declaration still loads).
    pub(super) fn warn(&self, message: impl fmt::Display) {
        self.1.borrow_mut().push(format!("{self}: {message}"));
    }
    /// The warnings recorded under this root so far.
    pub(super) fn warnings(&self) -> Vec<String> {
        self.1.borrow().clone()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("declaration")
        } else {
            f.write_str(&self.0)
        }
    }
}

pub(super) fn err(path: &str, message: String) -> DeclarationError {
    DeclarationError {
        path: path.to_string(),
        message,
    }
}

/// A JSON value shown briefly in an error message.
pub(super) fn show(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 60 {
        let cut = (0..=57)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} ({text})")
}

pub(super) fn show_str(s: &str) -> String {
    show(&Value::String(s.to_string()))
        .trim_start_matches("a string (")
        .trim_end_matches(')')
        .to_string()
}

pub(super) fn ip_value(v: &Value, p: &Path) -> Result<IpAddr, DeclarationError> {
    let s = v
        .as_str()
        .ok_or_else(|| p.err(format!("expected an IP address string, got {}", show(v))))?;
    s.parse()
        .map_err(|_| p.err(format!("{} is not an IP address", show_str(s))))
}

pub(super) struct Obj<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: Path,
    seen: Vec<&'static str>,
}

pub(super) type Items<'a> = Vec<(&'a Value, Path)>;

impl<'a> Obj<'a> {
    pub(super) fn new(v: &'a Value, path: Path) -> Result<Obj<'a>, DeclarationError> {
        let map = v
            .as_object()
            .ok_or_else(|| path.err(format!("expected an object, got {}", show(v))))?;
        Ok(Obj {
            map,
            path,
            seen: Vec::new(),
        })
    }

    pub(super) fn opt(&mut self, k: &'static str) -> Option<(&'a Value, Path)> {
        self.seen.push(k);
        self.map.get(k).map(|v| (v, self.path.key(k)))
    }

    pub(super) fn opt_str(
        &mut self,
        k: &'static str,
    ) -> Result<Option<(&'a str, Path)>, DeclarationError> {
        match self.opt(k) {
            Some((Value::String(s), p)) => Ok(Some((s.as_str(), p))),
            Some((v, p)) => Err(p.err(format!("expected a string, got {}", show(v)))),
            None => Ok(None),
        }
    }

    pub(super) fn req_str(&mut self, k: &'static str) -> Result<(&'a str, Path), DeclarationError> {
        self.opt_str(k)?
            .ok_or_else(|| self.path.key(k).err("is required"))
    }

    pub(super) fn req_ip(&mut self, k: &'static str) -> Result<(IpAddr, Path), DeclarationError> {
        match self.opt(k) {
            Some((v, p)) => Ok((ip_value(v, &p)?, p)),
            None => Err(self.path.key(k).err("is required")),
        }
    }

    pub(super) fn opt_bool(&mut self, k: &'static str) -> Result<Option<bool>, DeclarationError> {
        match self.opt(k) {
            Some((Value::Bool(b), _)) => Ok(Some(*b)),
            Some((v, p)) => Err(p.err(format!("expected true or false, got {}", show(v)))),
            None => Ok(None),
        }
    }

    pub(super) fn opt_int(
        &mut self,
        k: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, DeclarationError> {
        match self.opt(k) {
            Some((v, p)) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(p.err(format!(
                    "expected a whole number from {min} to {max}, got {}",
                    show(v)
                ))),
            },
            None => Ok(None),
        }
    }

    pub(super) fn opt_array(
        &mut self,
        k: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Option<(Items<'a>, Path)>, DeclarationError> {
        match self.opt(k) {
            Some((Value::Array(a), p)) => {
                if a.len() < min {
                    return Err(p.err(if min == 1 {
                        "must not be empty".to_string()
                    } else {
                        format!("needs at least {min} items")
                    }));
                }
                if a.len() > max {
                    return Err(p.err(format!(
                        "has {} items, more than the {max} allowed",
                        a.len()
                    )));
                }
                let items = a.iter().enumerate().map(|(i, v)| (v, p.idx(i))).collect();
                Ok(Some((items, p)))
            }
            Some((v, p)) => Err(p.err(format!("expected an array, got {}", show(v)))),
            None => Ok(None),
        }
    }

    pub(super) fn req_array(
        &mut self,
        k: &'static str,
        min: usize,
        max: usize,
    ) -> Result<(Items<'a>, Path), DeclarationError> {
        self.opt_array(k, min, max)?
            .ok_or_else(|| self.path.key(k).err("is required"))
    }

    pub(super) fn opt_tags(&mut self, k: &'static str) -> Result<Option<Tags>, DeclarationError> {
        let Some((v, p)) = self.opt(k) else {
            return Ok(None);
        };
        let map = v.as_object().ok_or_else(|| {
            p.err(format!(
                "expected an object of tag names to values, got {}",
                show(v)
            ))
        })?;
        if map.is_empty() {
            return Err(p.err("must name at least one tag (an empty set would match everything)"));
        }
        let mut tags = Tags::new();
        for (key, value) in map {
            // CFE's schema leaves tag values untyped: a number matches the tag of its text.
            let number = value.as_number().map(ToString::to_string);
            if let Some(n) = &number {
                p.key(key)
                    .warn(format!("the number {n} is read as the tag value \"{n}\""));
            }
            let s = number.as_deref().or(value.as_str()).ok_or_else(|| {
                p.key(key)
                    .err(format!("expected a tag value string, got {}", show(value)))
            })?;
            if key.is_empty() || key.len() > 128 || s.len() > 256 {
                return Err(p
                    .key(key)
                    .err("is not a valid EC2 tag (key 1-128, value 0-256 characters)"));
            }
            tags.insert(key.clone(), s.to_string());
        }
        Ok(Some(tags))
    }

    pub(super) fn finish(self) -> Result<(), DeclarationError> {
        for key in self.map.keys() {
            if !self.seen.contains(&key.as_str()) {
                let mut allowed = self.seen.clone();
                allowed.sort_unstable();
                allowed.dedup();
                return Err(self.path.key(key).err(format!(
                    "unknown property (allowed here: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::declaration::with;
    use serde_json::Value;

    #[test]
    fn unknown_property_is_named() {
        let e = with(|v| v["failoverAddresses"]["scopingTag"] = Value::Bool(true)).unwrap_err();
        assert_eq!(e.path, "failoverAddresses.scopingTag");
        assert!(e.message.starts_with("unknown property"), "{e}");
    }

    #[test]
    fn wrong_types_and_empty_lists() {
        let e = with(|v| v["failoverAddresses"]["enabled"] = "yes".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverAddresses.enabled: expected true or false, got a string (\"yes\")"
        );
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                serde_json::json!([])
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: must not be empty"
        );
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"][1] =
                "10.0.4.300".into()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items[1]: \"10.0.4.300\" is not an IP address"
        );
    }
}
