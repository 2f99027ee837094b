//! Reading the seed's TOML tables by hand rather than through serde, which stops at the first
//! error: the operator editing the seed on another machine gets every problem at once, each under
//! the field's full name, and each part of the seed falls back to its default on its own.

use super::Problem;

/// One table of the seed: the top level (no name) or a section such as `[network]`.
#[derive(Clone, Copy)]
pub(super) struct Table<'t> {
    name: &'static str,
    entries: &'t toml::Table,
}

impl<'t> Table<'t> {
    /// The top-level table.
    pub(super) fn root(entries: &'t toml::Table) -> Self {
        Self { name: "", entries }
    }

    /// The full name of `key` in this table (`network.address`).
    pub(super) fn field(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.name)
        }
    }

    /// Whether the table has `key`.
    pub(super) fn has(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The value of `key`, of whatever type.
    pub(super) fn get(&self, key: &str) -> Option<&'t toml::Value> {
        self.entries.get(key)
    }
}

/// The problems found so far, and the defaults used instead of what they concern.
#[derive(Default)]
pub(super) struct Reader {
    pub(super) problems: Vec<Problem>,
    pub(super) defaults: Vec<&'static str>,
}

impl Reader {
    /// Records a problem with `field`.
    pub(super) fn problem(&mut self, field: String, reason: impl Into<String>) {
        self.problems.push(Problem {
            field,
            reason: reason.into(),
        });
    }

    /// Records `check`'s verdict on `field`: its value, or its problem.
    pub(super) fn check<T>(&mut self, field: String, check: Result<T, String>) -> Option<T> {
        check.map_err(|reason| self.problem(field, reason)).ok()
    }

    /// Reports every key of `table` that is not one of `known`.
    pub(super) fn known_keys(&mut self, table: Table<'_>, known: &[&str]) {
        for key in table.entries.keys() {
            if !known.contains(&key.as_str()) {
                let expected = known.join(", ");
                self.problem(
                    table.field(key),
                    format!("unknown key (expected one of: {expected})"),
                );
            }
        }
    }

    /// The section `[name]`, when the seed has it; its unknown keys are reported.
    pub(super) fn section<'t>(
        &mut self,
        root: Table<'t>,
        name: &'static str,
        known: &[&str],
    ) -> Option<Table<'t>> {
        let entries = match root.entries.get(name)? {
            toml::Value::Table(entries) => entries,
            _ => {
                self.problem(name.to_owned(), format!("must be a table, [{name}]"));
                return None;
            }
        };
        let table = Table { name, entries };
        self.known_keys(table, known);
        Some(table)
    }

    /// The string `key`, when present.
    pub(super) fn string<'t>(&mut self, table: Table<'t>, key: &str) -> Option<&'t str> {
        match table.entries.get(key)? {
            toml::Value::String(text) => Some(text),
            _ => {
                self.problem(table.field(key), "must be a string, in quotes");
                None
            }
        }
    }

    /// The string `key`, which must be present.
    pub(super) fn required_string<'t>(&mut self, table: Table<'t>, key: &str) -> Option<&'t str> {
        if !table.has(key) {
            self.problem(table.field(key), "is missing");
        }
        self.string(table, key)
    }

    /// The string `key`, when present, as `check` reads it; its problem recorded under its name.
    pub(super) fn checked<T>(
        &mut self,
        table: Table<'_>,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(table, key)?;
        self.check(table.field(key), check(text))
    }

    /// [`Reader::checked`] of `key`, which must be present.
    pub(super) fn required_checked<T>(
        &mut self,
        table: Table<'_>,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.required_string(table, key)?;
        self.check(table.field(key), check(text))
    }

    /// The boolean `key`, when present.
    pub(super) fn boolean(&mut self, table: Table<'_>, key: &str) -> Option<bool> {
        match table.entries.get(key)? {
            toml::Value::Boolean(value) => Some(*value),
            _ => {
                self.problem(table.field(key), "must be true or false");
                None
            }
        }
    }

    /// The list of strings `key`, each checked by `check` and its problem recorded under its
    /// own field name (`time.ntp[1]`): their values when the list is present and all pass.
    pub(super) fn list<T>(
        &mut self,
        table: Table<'_>,
        key: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let toml::Value::Array(items) = table.entries.get(key)? else {
            self.problem(table.field(key), "must be a list of strings, [\"...\"]");
            return None;
        };
        let checked: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let field = format!("{}[{index}]", table.field(key));
                match item {
                    toml::Value::String(text) => self.check(field, check(text)),
                    _ => {
                        self.problem(field, "must be a string, in quotes");
                        None
                    }
                }
            })
            .collect();
        checked.into_iter().collect()
    }

    /// One part of the seed read by `read`: its value, or `default` (recorded as used `instead`)
    /// when `read` found any problem; `default` as well when the seed leaves the part out.
    pub(super) fn part<T>(
        &mut self,
        default: T,
        instead: &'static str,
        read: impl FnOnce(&mut Self) -> Option<T>,
    ) -> T {
        let before = self.problems.len();
        let value = read(self);
        if self.problems.len() > before {
            self.defaults.push(instead);
            return default;
        }
        value.unwrap_or(default)
    }
}
