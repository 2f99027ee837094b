//! Queries whose conditions depend on the request: parameters numbered as they are added, bound
//! in the same order, so no call site counts `$n` by hand.

use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A value to bind.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
}

/// The ids as arguments.
pub fn ids(ids: &[i64]) -> impl Iterator<Item = Arg> + '_ {
    ids.iter().map(|&id| Arg::Int(id))
}

/// SQL conditions and their arguments.
#[derive(Debug, Default)]
pub struct Conditions {
    sql: String,
    args: Vec<Arg>,
}

impl Conditions {
    /// The next parameter's placeholder, binding `arg` to it.
    pub fn param(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Adds `AND <condition>`.
    pub fn and(&mut self, condition: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
    }

    /// `$a, $b, ...` binding each of `args` (for `IN (...)`).
    pub fn list(&mut self, args: impl IntoIterator<Item = Arg>) -> String {
        args.into_iter()
            .map(|arg| self.param(arg))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The conditions, each starting with ` AND `.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Binds every argument, in order, to `query`.
    pub fn bind<'q>(
        &self,
        mut query: Query<'q, sqlx::Any, AnyArguments<'q>>,
    ) -> Query<'q, sqlx::Any, AnyArguments<'q>> {
        for arg in &self.args {
            query = match arg {
                Arg::Text(text) => query.bind(text.clone()),
                Arg::Int(value) => query.bind(*value),
            };
        }
        query
    }
}
