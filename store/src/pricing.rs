//! Prices per model and the cost of a request's usage, in integer
//! micro-USD.
//!
//! Prices are configured as crabllm writes them, in USD per million tokens
//! (`[models.NAME.pricing]` with `input`, `output`, `cache_read`,
//! `cache_write`), and kept as integers: micro-USD per million tokens
//! (`$2.50` is `2_500_000`). Costs are integers too, so budgets add up
//! exactly, with no float drift over millions of requests.
//!
//! # The arithmetic
//!
//! [`Usage`] follows OpenAI: `cached_tokens` (read from a prompt cache) and
//! `cache_write_tokens` (written to one) are *part of* `prompt_tokens`, and
//! `reasoning_tokens` are part of `completion_tokens`. Anthropic reports
//! its `input_tokens` *without* cache reads and writes; whoever builds a
//! `Usage` from an Anthropic answer adds them in. Then
//!
//! ```text
//! uncached = prompt_tokens - cached_tokens - cache_write_tokens   (never below 0)
//! cost_micros = round_half_up((uncached           × input
//!                            + cached_tokens      × cache_read
//!                            + cache_write_tokens × cache_write
//!                            + completion_tokens  × output) / 1_000_000)
//! ```
//!
//! with every price in micro-USD per million tokens, so the sum is in
//! micro-USD × 10⁶ and one division rounds once. Reasoning tokens cost the
//! output price because they are inside `completion_tokens`; they are not
//! charged again. A provider that reports more cache tokens than prompt
//! tokens has its cache tokens charged as reported and no uncached input.
//!
//! # Lookup
//!
//! [`PriceTable::get`] tries the model's exact name, then the longest name
//! in the table that is a prefix of it at a word boundary (`gpt-4o` prices
//! `gpt-4o-2024-11-20`, `claude-sonnet-4` prices `claude-sonnet-4-20250514`,
//! but `gpt-4` would not price `gpt-4o`). Failing both, it drops everything
//! up to each `/` or `.` in turn and tries again, so a vendor or region
//! prefix does not hide the family: Bedrock's
//! `us.anthropic.claude-sonnet-4-20250514-v1:0` and ARNs ending in one,
//! Gemini's `models/gemini-2.5-flash` and a router's `openai/gpt-4o` all
//! find their family's price. Long-context tiers (Gemini above 200k
//! prompt tokens, Claude Sonnet 4.x's 1M context) are not modelled: the
//! base tier is used.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::StoreError;

/// What one request used, in OpenAI's arithmetic: `cached_tokens` and
/// `cache_write_tokens` are inside `prompt_tokens`, `reasoning_tokens`
/// inside `completion_tokens`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Prompt and completion tokens: what a TPM limit counts.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}

/// A model's prices, each in micro-USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    pub input_micros_per_mtok: u64,
    pub output_micros_per_mtok: u64,
    pub cache_read_micros_per_mtok: u64,
    pub cache_write_micros_per_mtok: u64,
}

/// The highest price accepted from a config, in USD per million tokens: a
/// value above it is a typo (a per-token price entered per million, say).
pub const PRICE_USD_PER_MTOK_MAX: f64 = 100_000.0;

impl Price {
    /// A price from the config's USD per million tokens. A missing
    /// `cache_read` or `cache_write` costs what uncached input costs: a
    /// provider that does not discount cache reads nor charge extra for
    /// cache writes bills them as plain input.
    pub fn from_usd_per_mtok(
        input: f64,
        output: f64,
        cache_read: Option<f64>,
        cache_write: Option<f64>,
    ) -> Result<Price, StoreError> {
        let micros = |field: &'static str, usd: f64| -> Result<u64, StoreError> {
            if !(0.0..=PRICE_USD_PER_MTOK_MAX).contains(&usd) {
                return Err(StoreError::InvalidPrice { field, value: usd });
            }
            // In range and finite (NaN fails `contains`), so the cast is exact
            // up to the rounding to whole micro-USD.
            Ok((usd * 1e6).round() as u64)
        };
        let input_micros_per_mtok = micros("input", input)?;
        Ok(Price {
            input_micros_per_mtok,
            output_micros_per_mtok: micros("output", output)?,
            cache_read_micros_per_mtok: cache_read.map_or(Ok(input_micros_per_mtok), |v| micros("cache_read", v))?,
            cache_write_micros_per_mtok: cache_write.map_or(Ok(input_micros_per_mtok), |v| micros("cache_write", v))?,
        })
    }
}

/// The cost of `usage` at `price`, in micro-USD, rounded half up (see the
/// module docs for the arithmetic). Saturates at `u64::MAX`.
pub fn cost_micros(price: &Price, usage: &Usage) -> u64 {
    let cache = usage.cached_tokens.saturating_add(usage.cache_write_tokens);
    let uncached = usage.prompt_tokens.saturating_sub(cache);
    let term = |tokens: u64, micros_per_mtok: u64| u128::from(tokens) * u128::from(micros_per_mtok);
    let scaled = term(uncached, price.input_micros_per_mtok)
        + term(usage.cached_tokens, price.cache_read_micros_per_mtok)
        + term(usage.cache_write_tokens, price.cache_write_micros_per_mtok)
        + term(usage.completion_tokens, price.output_micros_per_mtok);
    u64::try_from((scaled + 500_000) / 1_000_000).unwrap_or(u64::MAX)
}

/// Prices as the providers published them at the time of writing (2025),
/// in USD per million tokens: `(model, input, output, cache_read,
/// cache_write)`. They change; `[models.NAME.pricing]` overrides any of
/// them and adds models. OpenAI and Gemini do not charge extra for cache
/// writes (Gemini bills cache storage by the hour, which is not a per-token
/// price), so their cache write is the input price; Anthropic's is the
/// five-minute cache write. Claude on Bedrock costs what it costs at
/// Anthropic and is found through the family name inside its id.
#[rustfmt::skip]
const BUILTIN_USD_PER_MTOK: &[(&str, f64, f64, f64, f64)] = &[
    // OpenAI
    ("gpt-4o",                 2.50,  10.00,  1.25,   2.50),
    ("gpt-4o-2024-05-13",      5.00,  15.00,  5.00,   5.00),
    ("gpt-4o-mini",            0.15,   0.60,  0.075,  0.15),
    ("gpt-4.1",                2.00,   8.00,  0.50,   2.00),
    ("gpt-4.1-mini",           0.40,   1.60,  0.10,   0.40),
    ("gpt-4.1-nano",           0.10,   0.40,  0.025,  0.10),
    ("o1",                    15.00,  60.00,  7.50,  15.00),
    ("o3",                     2.00,   8.00,  0.50,   2.00),
    ("o3-mini",                1.10,   4.40,  0.55,   1.10),
    ("o3-pro",                20.00,  80.00, 20.00,  20.00),
    ("o4-mini",                1.10,   4.40,  0.275,  1.10),
    // Anthropic (also on Bedrock and Vertex under ids that contain these)
    ("claude-3-haiku",         0.25,   1.25,  0.03,   0.30),
    ("claude-3-opus",         15.00,  75.00,  1.50,  18.75),
    ("claude-3-5-haiku",       0.80,   4.00,  0.08,   1.00),
    ("claude-3-5-sonnet",      3.00,  15.00,  0.30,   3.75),
    ("claude-3-7-sonnet",      3.00,  15.00,  0.30,   3.75),
    ("claude-sonnet-4",        3.00,  15.00,  0.30,   3.75),
    ("claude-sonnet-4-5",      3.00,  15.00,  0.30,   3.75),
    ("claude-opus-4",         15.00,  75.00,  1.50,  18.75),
    ("claude-opus-4-1",       15.00,  75.00,  1.50,  18.75),
    ("claude-opus-4-5",        5.00,  25.00,  0.50,   6.25),
    ("claude-haiku-4-5",       1.00,   5.00,  0.10,   1.25),
    // Google Gemini (prompts up to 200k tokens)
    ("gemini-2.5-pro",         1.25,  10.00,  0.125,  1.25),
    ("gemini-2.5-flash",       0.30,   2.50,  0.03,   0.30),
    ("gemini-2.5-flash-lite",  0.10,   0.40,  0.01,   0.10),
];

/// Model names to prices: the built-in table with the config's overrides
/// merged over it.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

impl PriceTable {
    /// No prices at all.
    pub fn empty() -> PriceTable {
        PriceTable::default()
    }

    /// The built-in prices.
    pub fn builtin() -> PriceTable {
        let mut table = PriceTable::empty();
        for &(name, input, output, cache_read, cache_write) in BUILTIN_USD_PER_MTOK {
            // The table above is data checked by a test; a bad row is a bug.
            let price = Price::from_usd_per_mtok(input, output, Some(cache_read), Some(cache_write))
                .expect("built-in prices are valid");
            table.insert(name, price);
        }
        table
    }

    /// The built-in prices with `overrides` (from `[models.NAME.pricing]`)
    /// replacing or adding entries.
    pub fn with_overrides(overrides: impl IntoIterator<Item = (String, Price)>) -> PriceTable {
        let mut table = PriceTable::builtin();
        for (name, price) in overrides {
            table.insert(name, price);
        }
        table
    }

    pub fn insert(&mut self, model: impl Into<String>, price: Price) {
        self.prices.insert(model.into(), price);
    }

    pub fn len(&self) -> usize {
        self.prices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prices.is_empty()
    }

    /// The price of `model`: exact name, longest known prefix, then the
    /// same after each `/` or `.` (see the module docs).
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.get_direct(model) {
            return Some(p);
        }
        model.char_indices().filter(|&(_, c)| c == '/' || c == '.').find_map(|(i, _)| self.get_direct(&model[i + 1..]))
    }

    /// The cost of `usage` on `model`, or `None` for a model with no price.
    pub fn cost_micros(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.get(model).map(|p| cost_micros(&p, usage))
    }

    fn get_direct(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        // Names sort so that every prefix of `model` in the table comes at or
        // before `model` itself; the scan is short (tens of entries) and runs
        // once per model per flush, not per streamed chunk.
        self.prices
            .range::<str, _>((Bound::Unbounded, Bound::Excluded(model)))
            .rev()
            .filter(|(name, _)| is_family_prefix(name, model))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

/// `name` is a prefix of `model` that ends at a word boundary: at the end
/// of `model`, before a character that is not a letter or digit, or after
/// one (a name ending in `-` is meant as a prefix).
fn is_family_prefix(name: &str, model: &str) -> bool {
    let Some(rest) = model.strip_prefix(name) else { return false };
    let ends_open = name.chars().next_back().is_some_and(|c| !c.is_ascii_alphanumeric());
    ends_open || rest.chars().next().is_none_or(|c| !c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(input: f64, output: f64, cache_read: f64, cache_write: f64) -> Price {
        Price::from_usd_per_mtok(input, output, Some(cache_read), Some(cache_write)).unwrap()
    }

    #[test]
    fn config_prices_become_integer_micros() {
        let p = Price::from_usd_per_mtok(2.5, 10.0, Some(0.075), None).unwrap();
        assert_eq!(
            p,
            Price {
                input_micros_per_mtok: 2_500_000,
                output_micros_per_mtok: 10_000_000,
                cache_read_micros_per_mtok: 75_000,
                cache_write_micros_per_mtok: 2_500_000,
            }
        );
        for bad in [-0.01, f64::NAN, f64::INFINITY, 100_000.01] {
            assert!(Price::from_usd_per_mtok(bad, 1.0, None, None).is_err(), "{bad}");
            assert!(Price::from_usd_per_mtok(1.0, 1.0, Some(bad), None).is_err(), "{bad}");
        }
        let err = Price::from_usd_per_mtok(1.0, 1.0, None, Some(-1.0)).unwrap_err().to_string();
        assert!(err.contains("cache_write"), "{err}");
    }

    #[test]
    fn cost_arithmetic() {
        let gpt4o = usd(2.50, 10.00, 1.25, 2.50);
        // 1,000 prompt (200 of them cached) and 500 completion tokens:
        // 800 × 2.5 + 200 × 1.25 + 500 × 10 = 2,000 + 250 + 5,000 = 7,250 µ$.
        let u = Usage { prompt_tokens: 1_000, completion_tokens: 500, cached_tokens: 200, ..Usage::default() };
        assert_eq!(cost_micros(&gpt4o, &u), 7_250);
        // Reasoning tokens are inside completion tokens: no extra charge.
        assert_eq!(cost_micros(&gpt4o, &Usage { reasoning_tokens: 400, ..u }), 7_250);

        // Anthropic-style cache write, already folded into prompt_tokens:
        // 1,000 uncached × 3 + 2,000 written × 3.75 + 3,000 read × 0.3 + 100 × 15
        // = 3,000 + 7,500 + 900 + 1,500 = 12,900 µ$.
        let sonnet = usd(3.0, 15.0, 0.30, 3.75);
        let u = Usage {
            prompt_tokens: 6_000,
            completion_tokens: 100,
            cached_tokens: 3_000,
            cache_write_tokens: 2_000,
            reasoning_tokens: 0,
        };
        assert_eq!(cost_micros(&sonnet, &u), 12_900);
    }

    #[test]
    fn cost_rounds_half_up_once() {
        // 0.15 $/M: one token is 0.15 µ$ → 0; four are 0.6 → 1; ten are 1.5 → 2.
        let mini = usd(0.15, 0.60, 0.075, 0.15);
        let prompt = |n| Usage { prompt_tokens: n, ..Usage::default() };
        assert_eq!(cost_micros(&mini, &prompt(1)), 0);
        assert_eq!(cost_micros(&mini, &prompt(3)), 0); // 0.45
        assert_eq!(cost_micros(&mini, &prompt(4)), 1); // 0.6
        assert_eq!(cost_micros(&mini, &prompt(10)), 2); // 1.5, half up
        // The terms are summed before the one rounding: 3 uncached × 0.15 +
        // 3 cached × 0.075 + 3 written × 0.15 = 0.45 + 0.225 + 0.45 = 1.125 → 1,
        // where rounding each term would give 0 + 0 + 0.
        let split = Usage { prompt_tokens: 9, cached_tokens: 3, cache_write_tokens: 3, ..Usage::default() };
        assert_eq!(cost_micros(&mini, &split), 1);
    }

    #[test]
    fn cost_handles_inconsistent_and_huge_usage() {
        let p = usd(1.0, 2.0, 0.5, 1.5);
        // More cache tokens than prompt tokens: cache charged, no uncached input.
        let u = Usage { prompt_tokens: 10, cached_tokens: 1_000_000, cache_write_tokens: 0, ..Usage::default() };
        assert_eq!(cost_micros(&p, &u), 500_000);
        let max = Usage {
            prompt_tokens: u64::MAX,
            completion_tokens: u64::MAX,
            cached_tokens: u64::MAX,
            cache_write_tokens: u64::MAX,
            reasoning_tokens: u64::MAX,
        };
        let dear = usd(PRICE_USD_PER_MTOK_MAX, PRICE_USD_PER_MTOK_MAX, PRICE_USD_PER_MTOK_MAX, PRICE_USD_PER_MTOK_MAX);
        assert_eq!(cost_micros(&dear, &max), u64::MAX);
        assert_eq!(cost_micros(&p, &Usage::default()), 0);
    }

    #[test]
    fn builtin_table_is_valid_and_complete() {
        let t = PriceTable::builtin();
        assert_eq!(t.len(), BUILTIN_USD_PER_MTOK.len(), "no name twice");
        for (name, p) in &t.prices {
            assert!(p.output_micros_per_mtok >= p.input_micros_per_mtok, "{name}: output costs at least input");
            assert!(p.cache_read_micros_per_mtok <= p.input_micros_per_mtok, "{name}: cache reads are not dearer");
            assert!(p.cache_write_micros_per_mtok >= p.input_micros_per_mtok, "{name}: cache writes are not cheaper");
        }
    }

    #[test]
    fn lookup_exact_then_longest_prefix_at_a_boundary() {
        let t = PriceTable::builtin();
        let input = |m: &str| t.get(m).map(|p| p.input_micros_per_mtok);
        assert_eq!(input("gpt-4o"), Some(2_500_000));
        assert_eq!(input("gpt-4o-2024-11-20"), Some(2_500_000));
        assert_eq!(input("gpt-4o-2024-05-13"), Some(5_000_000), "exact beats prefix");
        assert_eq!(input("gpt-4o-mini-2024-07-18"), Some(150_000), "longest prefix wins");
        assert_eq!(input("gpt-4.1-nano-2025-04-14"), Some(100_000));
        assert_eq!(input("o3-2025-04-16"), Some(2_000_000));
        assert_eq!(input("o3-mini"), Some(1_100_000));
        assert_eq!(input("o4-mini-2025-04-16"), Some(1_100_000));
        assert_eq!(input("claude-3-5-sonnet-20241022"), Some(3_000_000));
        assert_eq!(input("claude-3-5-sonnet-latest"), Some(3_000_000));
        assert_eq!(input("claude-opus-4-20250514"), Some(15_000_000));
        assert_eq!(input("claude-opus-4-1-20250805"), Some(15_000_000));
        assert_eq!(input("claude-opus-4-5-20251101"), Some(5_000_000));
        assert_eq!(input("claude-haiku-4-5"), Some(1_000_000));
        assert_eq!(input("claude-sonnet-4@20250514"), Some(3_000_000), "Vertex ids");
        assert_eq!(input("gemini-2.5-flash-lite"), Some(100_000));
        assert_eq!(input("gemini-2.5-flash-preview-05-20"), Some(300_000));
        assert_eq!(input("gemini-2.5-pro"), Some(1_250_000));
        // Not at a boundary: `o1` does not price `o1x`, `gpt-4o` not `gpt-4omega`.
        assert_eq!(input("o1x"), None);
        assert_eq!(input("gpt-4omega"), None);
        assert_eq!(input("llama-3-70b"), None);
        assert_eq!(input(""), None);
    }

    #[test]
    fn lookup_finds_the_family_inside_provider_ids() {
        let t = PriceTable::builtin();
        let input = |m: &str| t.get(m).map(|p| p.input_micros_per_mtok);
        assert_eq!(input("anthropic.claude-3-5-sonnet-20240620-v1:0"), Some(3_000_000));
        assert_eq!(input("anthropic.claude-3-5-haiku-20241022-v1:0"), Some(800_000));
        assert_eq!(input("us.anthropic.claude-sonnet-4-20250514-v1:0"), Some(3_000_000));
        assert_eq!(input("eu.anthropic.claude-3-7-sonnet-20250219-v1:0"), Some(3_000_000));
        assert_eq!(input("global.anthropic.claude-opus-4-5-20251101-v1:0"), Some(5_000_000));
        assert_eq!(
            input(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-1-20250805-v1:0"
            ),
            Some(15_000_000)
        );
        assert_eq!(input("models/gemini-2.5-flash"), Some(300_000));
        assert_eq!(input("openai/gpt-4.1-mini"), Some(400_000));
        assert_eq!(input("meta.llama3-70b-instruct-v1:0"), None);
    }

    #[test]
    fn overrides_replace_and_add_and_take_part_in_prefix_lookup() {
        let cheap = usd(0.01, 0.02, 0.01, 0.01);
        let t = PriceTable::with_overrides([("gpt-4o".to_owned(), cheap), ("my-llm".to_owned(), cheap)]);
        assert_eq!(t.get("gpt-4o"), Some(cheap));
        assert_eq!(t.get("gpt-4o-2024-11-20"), Some(cheap), "an override is a prefix too");
        assert_eq!(t.get("gpt-4o-mini").unwrap().input_micros_per_mtok, 150_000, "other entries stay");
        assert_eq!(t.get("my-llm-v2"), Some(cheap));
        assert_eq!(t.len(), BUILTIN_USD_PER_MTOK.len() + 1);
        let u = Usage { prompt_tokens: 1_000_000, completion_tokens: 1_000_000, ..Usage::default() };
        assert_eq!(t.cost_micros("my-llm", &u), Some(30_000));
        assert_eq!(t.cost_micros("unknown", &u), None);
        // A name ending in a separator is a prefix by intent.
        let mut t = PriceTable::empty();
        t.insert("acme-", cheap);
        assert_eq!(t.get("acme-large"), Some(cheap));
        assert!(PriceTable::empty().is_empty());
    }
}
