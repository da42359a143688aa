//! Minimal `--key value` / `--flag` argument parsing (no external parser, to keep builds small).

use std::collections::BTreeMap;

/// Flags that take no value.
const BOOL_FLAGS: &[&str] = &["text", "binary", "h2"];

#[derive(Debug)]
pub(crate) struct Args {
    values: BTreeMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    pub(crate) fn parse(argv: &[String]) -> Result<Self, String> {
        let mut values = BTreeMap::new();
        let mut flags = Vec::new();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            let Some(key) = a.strip_prefix("--") else {
                return Err(format!("unexpected argument {a:?}"));
            };
            if let Some((k, v)) = key.split_once('=') {
                values.insert(k.to_owned(), v.to_owned());
            } else if BOOL_FLAGS.contains(&key) {
                flags.push(key.to_owned());
            } else {
                let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
                values.insert(key.to_owned(), v.clone());
            }
        }
        Ok(Args { values, flags })
    }

    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub(crate) fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.values.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{key}: bad number {v:?}")),
        }
    }

    /// Reject options this mode does not know (catches typos that would silently use defaults).
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), String> {
        for k in self.values.keys().chain(self.flags.iter()) {
            if !known.contains(&k.as_str()) {
                return Err(format!("unknown option --{k}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_values_and_flags() {
        let a = Args::parse(&v("--url ws://127.0.0.1:1/ --conns=8 --text --secs 3")).unwrap();
        assert_eq!(a.str("url"), Some("ws://127.0.0.1:1/"));
        assert_eq!(a.num("conns", 1u32).unwrap(), 8);
        assert_eq!(a.num("depth", 1u32).unwrap(), 1);
        assert!(a.flag("text"));
        assert!(!a.flag("binary"));
        assert!(a.only(&["url", "conns", "text", "secs"]).is_ok());
        assert!(a.only(&["url"]).is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Args::parse(&v("positional")).is_err());
        assert!(Args::parse(&v("--conns")).is_err());
        let a = Args::parse(&v("--conns x")).unwrap();
        assert!(a.num("conns", 1u32).is_err());
    }
}
