//! The feature schema: one table that defines every feature's name, position, units, window,
//! exact formula and when it is missing. The code, `docs/features.md` (generated from this table)
//! and the from-scratch Python oracle used by the tests all follow it.
//!
//! The conventions the formulas use are in [`CONVENTIONS`] (exported to Python and rendered into
//! `docs/features.md`, so there is one copy).

/// Conventions used in the formulas (Markdown bullets).
pub const CONVENTIONS: &str = "\
* `bb`, `ba`: best bid and best ask price; `bs_k`, `as_k`: size of the k-th bid / ask level (k = 1 \
is the best); `b_k`, `a_k`: price of the k-th level. Sums over the \"top N\" use the levels that \
exist when a side has fewer than N.
* `mid = (bb + ba) / 2`; \"bps\" means `x / mid * 1e4` with the current mid. `mid`, `spread` and \
every distance are computed exactly from the integer prices and rounded once, so equal mids are \
equal floats. A distance is `|price - mid| / mid * 1e4`; \"within\" bounds are inclusive and \
\"nearer\" is strict, both decided exactly.
* Book features are computed after every applied book message; they are missing while either side \
is empty (each feature's \"missing when\" is the exact rule). An \"update\" is an applied book \
message of the symbol; \"now\" is the exchange timestamp (ms) of that message. Trades only feed \
the trade flow; they do not recompute the vector.
* A trade window of length W holds the symbol's trades with `ts > now - W` (trades stamped after \
`now` count). A trade is a buy when the taker bought.
* \"The last 100 updates\" is a window of 100 updates, whether or not each has a value. Medians of \
an even count are the mean of the two middle values. Walls are judged per side, also while the \
other side is empty.
* Prices are in the symbol's quote currency (USDT for linear perpetuals), sizes (\"base qty\") in \
its base currency, \"quote\" amounts in the quote currency. A window of `-` means the feature \
describes the current state.
";

/// Version of the feature vector layout. Bump it whenever a name, position or definition changes,
/// so models trained on one layout are never fed another.
pub const SCHEMA_VERSION: u32 = 1;

/// One feature: its place in the vector and its definition.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub group: &'static str,
    pub units: &'static str,
    pub window: &'static str,
    pub formula: &'static str,
    pub missing: &'static str,
}

macro_rules! schema {
    ($( $idx:ident = ($name:literal, $group:literal, $units:literal, $window:literal, $formula:literal, $missing:literal) ),* $(,)?) => {
        /// Positions of the features in the vector.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(usize)]
        pub enum F { $( $idx ),* }

        pub const FEATURES: &[FeatureSpec] = &[
            $( FeatureSpec { name: $name, group: $group, units: $units, window: $window, formula: $formula, missing: $missing } ),*
        ];
    };
}

schema! {
    // ---- book state -------------------------------------------------------------------------
    BestBid = ("best_bid", "book", "price", "-", "bb", "bid side empty"),
    BestAsk = ("best_ask", "book", "price", "-", "ba", "ask side empty"),
    Mid = ("mid", "book", "price", "-", "(bb + ba) / 2", "a side is empty"),
    Spread = ("spread", "book", "price", "-", "ba - bb", "a side is empty"),
    SpreadBps = ("spread_bps", "book", "bps", "-", "(ba - bb) / mid * 1e4", "a side is empty"),
    Microprice = ("microprice", "book", "price", "-", "(bb * as_1 + ba * bs_1) / (bs_1 + as_1)", "a side is empty"),
    MicropriceOffsetBps = ("microprice_offset_bps", "book", "bps", "-", "(microprice - mid) / mid * 1e4", "a side is empty"),
    BidSize1 = ("bid_size_1", "book", "base qty", "-", "bs_1", "a side is empty"),
    AskSize1 = ("ask_size_1", "book", "base qty", "-", "as_1", "a side is empty"),
    Imbalance1 = ("imbalance_1", "book", "ratio [-1, 1]", "top 1", "(sum bs_k - sum as_k) / (sum bs_k + sum as_k), k <= 1", "a side is empty"),
    Imbalance5 = ("imbalance_5", "book", "ratio [-1, 1]", "top 5", "as imbalance_1 over k <= 5", "a side is empty"),
    Imbalance10 = ("imbalance_10", "book", "ratio [-1, 1]", "top 10", "as imbalance_1 over k <= 10", "a side is empty"),
    Imbalance20 = ("imbalance_20", "book", "ratio [-1, 1]", "top 20", "as imbalance_1 over k <= 20", "a side is empty"),
    BidDepth5 = ("bid_depth_5", "book", "base qty", "top 5", "sum bs_k, k <= 5", "a side is empty"),
    AskDepth5 = ("ask_depth_5", "book", "base qty", "top 5", "sum as_k, k <= 5", "a side is empty"),
    BidDepth20 = ("bid_depth_20", "book", "base qty", "top 20", "sum bs_k, k <= 20", "a side is empty"),
    AskDepth20 = ("ask_depth_20", "book", "base qty", "top 20", "sum as_k, k <= 20", "a side is empty"),
    BidNotional10 = ("bid_notional_10", "book", "quote", "top 10", "sum b_k * bs_k, k <= 10", "a side is empty"),
    AskNotional10 = ("ask_notional_10", "book", "quote", "top 10", "sum a_k * as_k, k <= 10", "a side is empty"),
    ImpactBuyBps = ("impact_buy_bps", "book", "bps", "10,000 quote", "walk the asks from the best, taking whole levels and then the fraction of the last level needed until the cost sum(a_k * q_k) reaches 10,000 quote; vwap = cost / qty; (vwap - mid) / mid * 1e4", "a side is empty, or the asks hold less than 10,000 quote"),
    ImpactSellBps = ("impact_sell_bps", "book", "bps", "10,000 quote", "walk the bids the same way until sum(b_k * q_k) reaches 10,000 quote; (mid - vwap) / mid * 1e4", "a side is empty, or the bids hold less than 10,000 quote"),
    DensityBid10Bps = ("density_bid_10bps", "book", "base qty", "10 bps", "sum bs_k over bids with b_k >= mid * (1 - 0.001)", "a side is empty"),
    DensityAsk10Bps = ("density_ask_10bps", "book", "base qty", "10 bps", "sum as_k over asks with a_k <= mid * (1 + 0.001)", "a side is empty"),
    Pressure10 = ("pressure_10", "book", "ratio [-1, 1]", "top 10", "sum w_k (bs_k - as_k) / sum w_k (bs_k + as_k), w_k = 1 / k, k <= 10", "a side is empty"),
    BidLevels = ("bid_levels", "book", "count", "-", "number of bid levels", "never"),
    AskLevels = ("ask_levels", "book", "count", "-", "number of ask levels", "never"),
    Ofi = ("ofi", "book", "base qty", "1 update", "Cont-Kukanov-Stoikov order-flow imbalance against the previous update's best levels (bb', bs_1', ba', as_1'): [bb >= bb'] bs_1 - [bb <= bb'] bs_1' - [ba <= ba'] as_1 + [ba >= ba'] as_1'", "a side is empty now or at the previous update, or there is no previous update"),
    OfiSum100 = ("ofi_sum_100", "book", "base qty", "100 updates", "sum of ofi over the last 100 updates (missing ofi counts as 0)", "a side is empty"),
    OfiNorm100 = ("ofi_norm_100", "book", "ratio", "100 updates", "ofi_sum_100 / mean(bs_1 + as_1) over the last 100 updates with both sides present", "a side is empty"),
    // ---- clusters ("walls") -----------------------------------------------------------------
    WallBidCount = ("wall_bid_count", "clusters", "count", "top 50", "bid levels among the top 50 whose size is at least 5 x the median size of those top-50 levels", "a side is empty"),
    WallAskCount = ("wall_ask_count", "clusters", "count", "top 50", "the same for asks", "a side is empty"),
    WallBidDistBps = ("wall_bid_dist_bps", "clusters", "bps", "top 50", "(mid - price of the largest bid wall) / mid * 1e4; the largest is the biggest size, ties to the one nearer mid", "no bid wall"),
    WallAskDistBps = ("wall_ask_dist_bps", "clusters", "bps", "top 50", "(price of the largest ask wall - mid) / mid * 1e4", "no ask wall"),
    WallBidSizeRatio = ("wall_bid_size_ratio", "clusters", "ratio", "top 50", "size of the largest bid wall / median size of the top-50 bids", "no bid wall"),
    WallAskSizeRatio = ("wall_ask_size_ratio", "clusters", "ratio", "top 50", "size of the largest ask wall / median size of the top-50 asks", "no ask wall"),
    HotspotBidDistBps = ("hotspot_bid_dist_bps", "clusters", "bps", "top 50", "the run of 5 consecutive bid levels among the top 50 with the largest total size (the first such run from the best); (mid - price of its middle level) / mid * 1e4", "fewer than 5 bid levels"),
    HotspotAskDistBps = ("hotspot_ask_dist_bps", "clusters", "bps", "top 50", "the same for asks: (price of the middle level - mid) / mid * 1e4", "fewer than 5 ask levels"),
    SupportDistBps = ("support_dist_bps", "clusters", "bps", "30 s", "(mid - price) / mid * 1e4 of the highest-priced bid wall that has been a wall at every update for at least 30 s", "no such bid wall"),
    ResistanceDistBps = ("resistance_dist_bps", "clusters", "bps", "30 s", "(price - mid) / mid * 1e4 of the lowest-priced ask wall that has been a wall at every update for at least 30 s", "no such ask wall"),
    WallBidAgeS = ("wall_bid_age_s", "clusters", "seconds", "-", "how long the largest bid wall's price has been a wall without interruption (now - first update it was a wall)", "no bid wall"),
    WallAskAgeS = ("wall_ask_age_s", "clusters", "seconds", "-", "the same for the largest ask wall", "no ask wall"),
    // ---- level lifetime ---------------------------------------------------------------------
    LevelTtlMeanS = ("level_ttl_mean_s", "lifetime", "seconds", "100 removals", "mean lifetime of the last 100 levels deleted (size 0 in a message) while among the top 20 of their side; lifetime = delete ts - ts of the message that created the level (a snapshot creates all its levels)", "no such deletion yet"),
    BestBidAgeS = ("best_bid_age_s", "lifetime", "seconds", "-", "now - creation ts of the current best bid level", "bid side empty"),
    BestAskAgeS = ("best_ask_age_s", "lifetime", "seconds", "-", "now - creation ts of the current best ask level", "ask side empty"),
    // ---- trade flow -------------------------------------------------------------------------
    TradeVolume10s = ("trade_volume_10s", "trades", "base qty", "10 s", "sum of trade sizes in the window", "never (0 without trades)"),
    TradeCount10s = ("trade_count_10s", "trades", "count", "10 s", "number of trades in the window", "never"),
    VolumeDelta10s = ("volume_delta_10s", "trades", "base qty", "10 s", "buy volume - sell volume in the window", "never"),
    BuyRatio10s = ("buy_ratio_10s", "trades", "ratio [0, 1]", "10 s", "buy volume / volume in the window", "no trades in the window"),
    TradeVwapDevBps = ("trade_vwap_dev_bps", "trades", "bps", "10 s", "(sum p * v / sum v over the window - mid) / mid * 1e4", "no trades in the window, or a book side is empty"),
    VolumeAnomalyZ = ("volume_anomaly_z", "trades", "z-score", "10 s, EW 0.01", "(trade_volume_10s - m) / s where m and v are exponentially weighted mean and variance of trade_volume_10s taken at every update, including the current one: at the first update m = x, v = 0; then m += a (x - m_prev), v = (1 - a)(v + a (x - m_prev)^2), a = 0.01; s = sqrt(v)", "fewer than 2 updates, or s == 0"),
    PocDistBps = ("poc_dist_bps", "trades", "bps", "300 s", "volume profile of the window by exact trade price; point of control = the price with the most volume (ties to the lower price); (poc - mid) / mid * 1e4", "no trades in the window, or a book side is empty"),
    VaLowDistBps = ("va_low_dist_bps", "trades", "bps", "300 s", "value area: start at the POC and repeatedly add the next-higher or next-lower traded price, whichever has more volume (ties to the higher), until the area holds >= 70% of the window volume; (val - mid) / mid * 1e4 for its lowest price", "as poc_dist_bps"),
    VaHighDistBps = ("va_high_dist_bps", "trades", "bps", "300 s", "(vah - mid) / mid * 1e4 for the value area's highest price", "as poc_dist_bps"),
    AccDist300s = ("acc_dist_300s", "trades", "ratio [-1, 1]", "300 s", "sum v * ((p - L) - (H - p)) / (H - L) / sum v over the window, H and L the highest and lowest trade price in it", "no trades in the window, or H == L"),
    Vpin = ("vpin", "trades", "ratio [0, 1]", "50 buckets", "trades fill consecutive volume buckets of size V (V = volume of the symbol's first 50 trades / 10; from the 50th trade on, all trades including those first 50 fill buckets in order; a trade spanning buckets is split); VPIN = mean over the last 50 full buckets of |buy - sell| / V", "fewer than 50 trades seen, or no full bucket yet"),
    // ---- manipulation -----------------------------------------------------------------------
    SpoofScore60s = ("spoof_score_60s", "manipulation", "score", "60 s", "max score of spoofing detections in the window (0 if none). Distance = |price - mid| / mid * 1e4 with the mid of that update. A detection is a wall whose distance was <= 20 bps at the update it first became a wall, that vanished (its price stopped being a wall on that side) at most 10 s later with no trade at its price in [first seen, vanished], whose distance at vanishing is smaller than at first sight, and whose score = size ratio at first sight * (1 - distance at vanishing / 20) is > 0", "never"),
    LayeringScore60s = ("layering_score_60s", "manipulation", "score", "60 s", "max score of layering detections in the window (0 if none). At an update where a wall of a side vanishes, take that side's walls that vanished at this update or in the previous 2,000 ms, with no trade at their price in [first seen, vanished], a distance <= 50 bps when first seen, and not yet part of a layering detection; those first seen within 2,000 ms of the earliest of them form a detection if there are 3 or more; score = count * mean size ratio at first sight", "never"),
    // ---- temporal ---------------------------------------------------------------------------
    MidRetMean100 = ("mid_ret_mean_100", "temporal", "bps", "100 updates", "mean of r_k = ln(mid_k / mid_(k-1)) * 1e4 over the last 100 updates with a mid at both ends", "fewer than 1 return"),
    MidRetStd100 = ("mid_ret_std_100", "temporal", "bps", "100 updates", "population standard deviation of the same returns", "fewer than 2 returns"),
    MidRetSkew100 = ("mid_ret_skew_100", "temporal", "ratio", "100 updates", "population skewness of the same returns: mean((r - m)^3) / std^3", "fewer than 3 returns or std == 0"),
    Imbalance5Mean100 = ("imbalance_5_mean_100", "temporal", "ratio", "100 updates", "mean of imbalance_5 over the last 100 updates where it exists", "no value in the window"),
    Imbalance5Std100 = ("imbalance_5_std_100", "temporal", "ratio", "100 updates", "population standard deviation of the same", "fewer than 2 values"),
    SpreadBpsMean100 = ("spread_bps_mean_100", "temporal", "bps", "100 updates", "mean of spread_bps over the last 100 updates where it exists", "no value in the window"),
    MidRoc1sBps = ("mid_roc_1s_bps", "temporal", "bps", "1 s", "(mid - mid_then) / mid_then * 1e4, mid_then = the mid of the last update with ts <= now - 1000 ms", "no update that old, or a side is empty"),
    MidRoc10sBps = ("mid_roc_10s_bps", "temporal", "bps", "10 s", "the same with 10,000 ms", "no update that old, or a side is empty"),
    MidAccel1sBps = ("mid_accel_1s_bps", "temporal", "bps", "1 s", "mid_roc_1s_bps now - mid_roc_1s_bps of the last update with ts <= now - 1000 ms", "either value missing"),
    RealizedVol10sBps = ("realized_vol_10s_bps", "temporal", "bps", "10 s", "sqrt(sum r_k^2) over the returns of updates with ts > now - 10,000 ms", "no return in the window"),
    VarianceRatio10 = ("variance_ratio_10", "temporal", "ratio", "100 updates", "var(s) / (10 * var(r)), r = the returns of mid_ret_mean_100 in order, s = the n - 9 sums of 10 consecutive r (population variances); near 1 for a random walk, below 1 with microstructure noise", "fewer than 20 returns or var(r) == 0"),
    // ---- cross-symbol and cross-exchange --------------------------------------------------
    CorrRef100 = ("corr_ref_100", "cross", "ratio [-1, 1]", "100 updates", "Pearson correlation over the last 100 updates of this symbol's mid returns with the reference symbol's mid return over the same interval (reference mid at this update / reference mid at this symbol's previous update, log, bps)", "no reference symbol set, the symbol is the reference, fewer than 3 pairs, or zero variance"),
    BasisExtBps = ("basis_ext_bps", "cross", "bps", "-", "(mid - external mid) / external mid * 1e4, the external mid given by set_external_mid (e.g. the same pair on Binance)", "no external mid set, or a side is empty"),
}

/// Number of features in the vector.
pub const N_FEATURES: usize = FEATURES.len();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_positions_match() {
        let mut names: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), N_FEATURES);
        const { assert!(N_FEATURES >= 50) };
        assert_eq!(FEATURES[F::Imbalance5 as usize].name, "imbalance_5");
        assert_eq!(FEATURES[F::BasisExtBps as usize].name, "basis_ext_bps");
    }
}
