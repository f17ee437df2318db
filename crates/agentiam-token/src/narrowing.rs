//! Delegation narrowing, checked by every verifier: along a token's recorded chain of ancestors
//! (`dlg`, oldest first) and on to the token itself, scopes, expiry and budget only shrink,
//! and the chain is no deeper than allowed.

use crate::claims::{Budget, Claims};
use crate::error::clip;
use crate::{ScopeSet, TokenError};

/// Default maximum delegation depth (ancestors of a token).
pub const DEFAULT_MAX_DELEGATION_DEPTH: usize = 4;

fn act_depth(claims: &Claims) -> usize {
    let mut depth = 0;
    let mut cur = claims.act.as_ref();
    while let Some(a) = cur {
        depth += 1;
        cur = a.get("act");
    }
    depth
}

/// Checks that `child` narrows `parent` (scopes, expiry, budget).
pub fn check_step(
    parent: (&ScopeSet, i64, Option<&Budget>),
    child: (&ScopeSet, i64, Option<&Budget>),
) -> Result<(), TokenError> {
    if let Some(wider) = child.0.first_outside(parent.0) {
        return Err(TokenError::ScopeWidened(clip(&wider.to_string())));
    }
    if child.1 > parent.1 {
        return Err(TokenError::ExpiryExtended {
            child: child.1,
            parent: parent.1,
        });
    }
    if !Budget::is_within(child.2, parent.2) {
        return Err(TokenError::BudgetWidened);
    }
    Ok(())
}

/// Checks a token's whole recorded chain.
pub fn check_chain(claims: &Claims, max_depth: usize) -> Result<(), TokenError> {
    let depth = claims.dlg.len();
    if depth == 0 {
        return Ok(());
    }
    if depth > max_depth {
        return Err(TokenError::DepthExceeded {
            depth,
            max: max_depth,
        });
    }
    // Each exchange adds exactly one actor and one hop; a token for a person starts with one
    // actor (the agent acting for them) and no hop.
    let acts = act_depth(claims);
    let first_actors = usize::from(claims.person.is_some());
    if acts != depth + first_actors {
        return Err(TokenError::BrokenChain(format!(
            "{depth} delegation records but {acts} actors"
        )));
    }
    // An intent, once declared, stays: the token that declared it is the first to carry it
    // (its `jti` is the intent's id), and every later hop and the token carry the same one.
    let carriers = claims
        .dlg
        .iter()
        .map(|hop| (hop.jti.as_deref(), hop.intent.as_ref()))
        .chain(std::iter::once((
            claims.jti.as_deref(),
            claims.intent.as_ref(),
        )));
    let mut declared = None;
    for (jti, intent) in carriers {
        match (declared, intent) {
            (None, None) => {}
            (None, Some(i)) if jti == Some(i.id.as_str()) => declared = Some(i),
            (Some(d), Some(i)) if d == i => {}
            (None, Some(i)) | (Some(i), _) => {
                return Err(TokenError::BrokenChain(format!(
                    "intent {} is not carried from the token that declared it",
                    clip(&i.id)
                )));
            }
        }
    }
    for pair in claims.dlg.windows(2) {
        if let [p, c] = pair {
            check_step(
                (&p.scope, p.exp, p.budget.as_ref()),
                (&c.scope, c.exp, c.budget.as_ref()),
            )?;
        }
    }
    if let Some(last) = claims.dlg.last() {
        check_step(
            (&last.scope, last.exp, last.budget.as_ref()),
            (&claims.scope, claims.exp, claims.budget.as_ref()),
        )?;
    }
    Ok(())
}
