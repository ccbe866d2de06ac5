//! Aggregate SQL functions for the SQLite extension (extensions/sqlite). Each aggregate group
//! gets a fresh instance, so the state lives in plain statics: `*_step` is called once per
//! row, `*_final` once at the end and gives the result.

use plinth_pdk::*;
use std::sync::Mutex;

static VALUES: Mutex<Vec<f64>> = Mutex::new(Vec::new());
static WEIGHTED: Mutex<(f64, f64)> = Mutex::new((0.0, 0.0));
static JOINED: Mutex<Option<String>> = Mutex::new(None);

fn number(text: &str) -> Result<f64, Error> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| Error::msg(format!("not a number: {text:?}")))
}

/// One row of `median(x)`: x as decimal text.
#[plugin_fn]
pub fn median_step(input: String) -> FnResult<()> {
    VALUES.lock().unwrap().push(number(&input)?);
    Ok(())
}

/// The median of the rows, as decimal text; empty (SQL NULL) when there were none.
#[plugin_fn]
pub fn median_final() -> FnResult<String> {
    let mut values = std::mem::take(&mut *VALUES.lock().unwrap());
    if values.is_empty() {
        return Ok(String::new());
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Ok(median.to_string())
}

/// One row of `wavg(x, w)`: the extension passes several arguments as a JSON array `[x, w]`.
#[plugin_fn]
pub fn wavg_step(Json(row): Json<(f64, f64)>) -> FnResult<()> {
    let mut acc = WEIGHTED.lock().unwrap();
    acc.0 += row.0 * row.1;
    acc.1 += row.1;
    Ok(())
}

/// sum(x * w) / sum(w); empty (SQL NULL) when the weights add up to 0.
#[plugin_fn]
pub fn wavg_final() -> FnResult<String> {
    let (sum, weights) = *WEIGHTED.lock().unwrap();
    if weights == 0.0 {
        return Ok(String::new());
    }
    Ok((sum / weights).to_string())
}

/// One row of `join(text)`.
#[plugin_fn]
pub fn join_step(input: String) -> FnResult<()> {
    let mut joined = JOINED.lock().unwrap();
    match joined.as_mut() {
        Some(s) => {
            s.push(',');
            s.push_str(&input);
        }
        None => *joined = Some(input),
    }
    Ok(())
}

/// The rows' texts joined with commas.
#[plugin_fn]
pub fn join_final() -> FnResult<String> {
    Ok(JOINED.lock().unwrap().take().unwrap_or_default())
}
