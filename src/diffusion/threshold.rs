//! What the samplers do to x̂_0 before they use it: clipping, or dynamic thresholding.

use burn::tensor::Tensor;

use super::ScheduleConfig;

/// x̂_0 as the scheduler config says, as diffusers' schedulers do it: dynamic thresholding if
/// `thresholding`, else clipping to ±`clip_sample_range` where the sampler clips (`clips`:
/// DDPM and DDIM; diffusers' DPM-Solver++ has no `clip_sample`).
pub fn limit_x0(config: &ScheduleConfig, x0: Tensor<4>, clips: bool) -> Tensor<4> {
    if config.thresholding {
        #[cfg(not(target_arch = "wasm32"))]
        return dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value);
        #[cfg(target_arch = "wasm32")]
        unreachable!("the tab refuses dynamic thresholding before it samples");
    } else if clips && config.clip_sample {
        x0.clamp(-config.clip_sample_range, config.clip_sample_range)
    } else {
        x0
    }
}

/// Dynamic thresholding (Saharia et al. 2022, §2.3; diffusers' `_threshold_sample`): per
/// image, s = the `ratio` quantile of |x̂_0| (linear interpolation, as `torch.quantile`),
/// clamped to [1, `max`]; x̂_0 is clipped to [−s, s] and divided by s.
///
/// It sorts each image's values, which burn does on the host: natively that is a blocking
/// read, and the browser (where reads must be async) refuses thresholding before sampling. So
/// the tab's wasm leaves it out (burn's host sort for every backend and dtype is about 0.9 MB).
#[cfg(not(target_arch = "wasm32"))]
pub fn dynamic_threshold(x0: Tensor<4>, ratio: f64, max: f64) -> Tensor<4> {
    let [b, c, h, w] = x0.dims();
    let n = c * h * w;
    let flat = x0.reshape([b, n]);
    let sorted = flat.clone().abs().sort(1);
    let position = ratio * (n - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(n - 1);
    let low = sorted.clone().slice([0..b, below..below + 1]);
    let high = sorted.slice([0..b, above..above + 1]);
    let s = (low.clone() + (high - low).mul_scalar(position - below as f64)).clamp(1.0, max).expand([b, n]);
    flat.clone().max_pair(s.clone().neg()).min_pair(s.clone()).div(s).reshape([b, c, h, w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn thresholding_scales_each_image_by_its_quantile() {
        // One image of 0, 1, …, 9 (and its negation): the 0.9 quantile of |x| by linear
        // interpolation is 8.1 (position 0.9 · 9 = 8.1), so x ↦ clamp(x, ±8.1)/8.1.
        let device = Device::flex();
        let values: Vec<f32> = (0..10).map(|v| v as f32).chain((0..10).map(|v| -(v as f32))).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [2, 1, 2, 5]), &device);
        let out = dynamic_threshold(x, 0.9, 100.0).into_data().try_to_vec::<f32>().unwrap();
        for (o, v) in out.iter().zip(&values) {
            let expected = v.clamp(-8.1, 8.1) / 8.1;
            assert!((o - expected).abs() < 1e-6, "{o} vs {expected}");
        }
        // s is at least 1: images already inside [−1, 1] are left as they are.
        let small = Tensor::<4>::from_data(TensorData::new(vec![0.5f32, -0.25], [1, 1, 1, 2]), &device);
        assert_eq!(dynamic_threshold(small, 0.995, 1.0).into_data().try_to_vec::<f32>().unwrap(), vec![0.5, -0.25]);
    }
}
