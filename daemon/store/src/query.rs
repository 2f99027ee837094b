//! Queries whose conditions depend on the request: parameters numbered as they are added, bound
//! in the same order, so no call site counts `$n` by hand.

use crate::engine::Arg;

/// A value the conditions own (built from the request, such as a `LIKE` pattern).
#[derive(Debug, Clone)]
pub enum Param {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

impl Param {
    /// The parameter as a query argument.
    pub fn arg(&self) -> Arg<'_> {
        match self {
            Param::Text(text) => Arg::Text(text),
            Param::Int(value) => Arg::Int(*value),
        }
    }
}

/// SQL conditions and their parameters.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    sql: String,
    params: Vec<Param>,
}

impl Conditions {
    /// The next parameter's placeholder, binding `param` to it.
    pub fn param(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    /// Adds `AND <condition>`.
    pub fn and(&mut self, condition: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
    }

    /// `$a, $b, ...` binding each of `params` (for `IN (...)`).
    pub fn list(&mut self, params: impl IntoIterator<Item = Param>) -> String {
        params
            .into_iter()
            .map(|param| self.param(param))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The conditions, each starting with ` AND `.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The parameters, in order, to bind.
    pub fn args(&self) -> Vec<Arg<'_>> {
        self.params.iter().map(Param::arg).collect()
    }

    /// The parameters, owned (for a query that outlives the request).
    pub fn params(&self) -> &[Param] {
        &self.params
    }
}

/// The ids as parameters.
pub fn ids(ids: &[i64]) -> impl Iterator<Item = Param> + '_ {
    ids.iter().map(|&id| Param::Int(id))
}

/// `value` for a `LIKE` pattern, its wildcards escaped with `\`.
pub fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The `LIKE ... ESCAPE '\'` pattern of a lower-cased column containing `value`, in any case.
pub fn contains(value: &str) -> Param {
    Param::Text(format!("%{}%", escaped(&value.to_lowercase())))
}
