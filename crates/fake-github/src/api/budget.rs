//! Rate-limit budgets: one per token or App, counted per request and reset each hour, as GitHub reports them.

use chrono::Utc;

use crate::Inner;
use crate::state::Budget;

use super::*;

/// The budget of `key`, after counting one request when `count`.
pub(crate) fn limits(inner: &Inner, key: &str, count: bool) -> Limits {
    let exhausted_until = inner.faults.primary_exhausted();
    let now = Utc::now().timestamp();
    let mut state = inner.lock();
    let limit = state.per_hour;
    let budget = state.budgets.entry(key.to_string()).or_insert(Budget { used: 0, reset: now + 3600 });
    if budget.reset <= now {
        *budget = Budget { used: 0, reset: now + 3600 };
    }
    if count {
        budget.used = budget.used.saturating_add(1);
    }
    match exhausted_until {
        Some(until) => Limits { limit, remaining: 0, used: limit.max(budget.used), reset: until.timestamp() },
        None => Limits { limit, remaining: limit.saturating_sub(budget.used), used: budget.used, reset: budget.reset },
    }
}
