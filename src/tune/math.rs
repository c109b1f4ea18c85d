//! Which math tier the products may use (`--math auto|simt|coopmat`): what the adapter and the
//! weight type allow, the tier defaults under that choice, and the record each workload keeps.

use crate::InputError;
use crate::gpu::GpuContext;
use crate::kernels::matmul::{GEMV_MAX_ROWS, ProductTiles};
use crate::kernels::matmul_coop::{self, CoopSupport};
use crate::kernels::{KernelConfig, WeightDtype};
use crate::result::MathRecord;
use tokbench_core::kernel_config::{Math, MathRequest};

/// The tiers open to a run, decided once the device is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MathChoice {
    /// What `--math` asked for.
    pub requested: MathRequest,
    /// The cooperative-matrix tier's support, when the tier may be used.
    pub coop: Option<CoopSupport>,
    /// Why the cooperative-matrix tier is out, when it is.
    pub coop_unavailable: Option<String>,
}

impl MathChoice {
    /// The tiers `requested` opens on this device with `dtype` weights. `--math coopmat` where
    /// the tier cannot run is an input error naming what is missing.
    pub fn new(
        ctx: &GpuContext,
        dtype: WeightDtype,
        requested: MathRequest,
    ) -> Result<Self, InputError> {
        let support =
            matmul_coop::dtype_reason(dtype).map_or_else(|| matmul_coop::support(ctx), Err);
        Self::from_support(requested, support)
    }

    /// The choice on a device without cooperative matrices (the mock device): SIMT, or for
    /// `--math coopmat` an input error saying `why`.
    pub fn without_coop(requested: MathRequest, why: &str) -> Result<Self, InputError> {
        Self::from_support(requested, Err(why.to_string()))
    }

    fn from_support(
        requested: MathRequest,
        support: Result<CoopSupport, String>,
    ) -> Result<Self, InputError> {
        match (requested, support) {
            (MathRequest::Simt, _) => Ok(Self {
                requested,
                coop: None,
                coop_unavailable: Some("--math simt".into()),
            }),
            (MathRequest::Coopmat, Err(why)) => Err(InputError::new(format!(
                "--math coopmat: {why}; use --math auto or --math simt"
            ))),
            (_, Ok(s)) => Ok(Self {
                requested,
                coop: Some(s),
                coop_unavailable: None,
            }),
            (MathRequest::Auto, Err(why)) => Ok(Self {
                requested,
                coop: None,
                coop_unavailable: Some(why),
            }),
        }
    }

    /// Whether SIMT product tiles may be chosen.
    pub fn allows_simt(&self) -> bool {
        self.requested != MathRequest::Coopmat
    }

    /// The tier defaults under this choice: the cooperative tiles for `--math coopmat`, and for
    /// auto on GPUs (tensor cores are their fast path); SIMT otherwise (on a CPU adapter such
    /// as lavapipe the matrices are emulated, so untimed auto stays on SIMT).
    pub fn defaults(&self, ctx: &GpuContext) -> KernelConfig {
        let mut config = KernelConfig::default_for(ctx.traits());
        if let Some(s) = &self.coop
            && (self.requested == MathRequest::Coopmat || !ctx.traits().cpu)
        {
            config.matmul.tiles = matmul_coop::default_tiles(s);
        }
        config
    }

    /// True when every product, however few its rows, runs on the many-row kernel: under
    /// `--math coopmat` a decode's products go to cooperative matrices too (wasting most of each
    /// matrix at one row, but measuring what was asked), where `auto` and `simt` send them to the
    /// GEMV.
    pub fn every_row_on_tiles(&self) -> bool {
        self.requested == MathRequest::Coopmat
    }

    /// The record of a workload whose products have `rows` rows and ran with `tiles` on
    /// `dtype` weights; `source` says where the kernel configuration came from.
    pub fn record(
        &self,
        tiles: ProductTiles,
        dtype: WeightDtype,
        rows: usize,
        lm_head_rows: usize,
        source: &str,
    ) -> MathRecord {
        let simt = Math::simt(dtype);
        let on_tiles = |rows: usize| rows > GEMV_MAX_ROWS as usize || self.every_row_on_tiles();
        let many_rows = on_tiles(rows);
        let tier = if many_rows { tiles.math(dtype) } else { simt };
        let mut reason = match (self.requested, &self.coop_unavailable) {
            (MathRequest::Auto, Some(why)) => format!("auto: SIMT because {why}"),
            (MathRequest::Auto, None) => format!(
                "auto: {} was the configuration chosen from SIMT and cooperative-matrix \
                 candidates ({source})",
                tiles.math(dtype).name()
            ),
            (MathRequest::Coopmat, _) if rows <= GEMV_MAX_ROWS as usize => format!(
                "--math coopmat: every product on cooperative matrices, these {rows}-row ones \
                 included, where auto would run them on the GEMV kernel"
            ),
            (requested, _) => format!("--math {}", requested.name()),
        };
        if !many_rows {
            reason.push_str(&format!(
                "; its products have {rows} row(s), at most {GEMV_MAX_ROWS}: they run on the GEMV \
                 kernel, SIMT"
            ));
        } else if tier.is_coop() && !on_tiles(lm_head_rows) {
            reason.push_str(&format!(
                "; the LM head's rows (one per sequence, {lm_head_rows} here) run on the GEMV \
                 kernel, SIMT"
            ));
        }
        record(tier, self.requested, reason)
    }
}

/// A math record without a peak yet (the runner fills it from the probes).
pub fn record(tier: Math, requested: MathRequest, reason: String) -> MathRecord {
    MathRecord {
        tier,
        requested: requested.name().into(),
        reason,
        activations: if tier.is_coop() {
            "f16, converted on load".into()
        } else {
            "f32".into()
        },
        peak_probe: if tier.is_coop() {
            "probe-matrix".into()
        } else {
            "probe-fma".into()
        },
        peak_gflops: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::test_context;

    #[test]
    fn coopmat_without_the_tier_is_an_input_error_and_auto_says_why_it_fell_back() {
        let ctx = test_context();
        let f32_err = MathChoice::new(ctx, WeightDtype::F32, MathRequest::Coopmat).unwrap_err();
        assert!(f32_err.to_string().contains("--dtype f16"), "{f32_err}");
        let auto = MathChoice::new(ctx, WeightDtype::F32, MathRequest::Auto).unwrap();
        assert!(auto.coop.is_none());
        let r = auto.record(
            auto.defaults(ctx).matmul.tiles,
            WeightDtype::F32,
            64,
            1,
            "x",
        );
        assert_eq!(r.tier, Math::SimtF32);
        assert!(
            r.reason.starts_with("auto: SIMT because --dtype f32"),
            "{}",
            r.reason
        );
        match MathChoice::new(ctx, WeightDtype::F16, MathRequest::Coopmat) {
            Ok(choice) => {
                let tiles = choice.defaults(ctx).matmul.tiles;
                assert!(matches!(tiles, ProductTiles::Coop { .. }));
                let r = choice.record(tiles, WeightDtype::F16, 64, 1, "x");
                assert_eq!(
                    (r.tier, r.peak_probe.as_str()),
                    (Math::CoopmatF16, "probe-matrix")
                );
                // Every product on the matrices, the one-row LM head too.
                assert!(!r.reason.contains("LM head"), "{}", r.reason);
                // Decode: the matrices too, because coopmat was asked for.
                let d = choice.record(tiles, WeightDtype::F16, 1, 1, "x");
                assert_eq!(d.tier, Math::CoopmatF16, "{}", d.reason);
                assert!(d.reason.contains("1-row ones included"), "{}", d.reason);
                // Under auto, decode's products stay on the GEMV, SIMT.
                let auto = MathChoice::new(ctx, WeightDtype::F16, MathRequest::Auto).unwrap();
                let d = auto.record(tiles, WeightDtype::F16, 1, 1, "x");
                assert_eq!(d.tier, Math::SimtF16);
                let r = auto.record(tiles, WeightDtype::F16, 64, 1, "x");
                assert!(r.reason.contains("LM head"), "{}", r.reason);
            }
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("--math coopmat: adapter") && msg.contains("use --math auto"),
                    "{msg}"
                );
            }
        }
        let simt = MathChoice::new(ctx, WeightDtype::F16, MathRequest::Simt).unwrap();
        assert!(!matches!(
            simt.defaults(ctx).matmul.tiles,
            ProductTiles::Coop { .. }
        ));
    }
}
