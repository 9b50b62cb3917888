//! Data-parallel training over several devices, with the strategy burn itself offers where the
//! runtimes have no collectives (burn-train's `MultiDeviceTrainEpochV2::run_optim_main`; burn's
//! DDP needs NCCL, so CUDA only): each device runs forward and backward on its share of the
//! batch, the gradients are moved to the main device (`GradientsParams::to_device`) and summed
//! there (`GradientsAccumulator`), one optimizer step is taken there, and the next step starts
//! every other device from a copy of the updated weights.
//!
//! The step is the single-device step on the same global batch: the random draws are made for
//! the whole batch from the run's one stream, and each share's mean loss is weighted by its
//! share of the batch, so the summed gradients are those of the batch's mean loss. Only the
//! order of the floating-point sums differs.

use std::thread;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};

use super::{Batch, Trainer, denoising_loss};
use crate::model::DenoiserConfig;

/// Why a trainer cannot use the devices it was given.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DevicesError {
    #[error("no devices were given")]
    NoDevices,
    #[error("the first device must be the one the run was created on (its weights, optimizer and EMA live there)")]
    NotMain,
    #[error("a batch of {batch} images cannot give each of {devices} devices an image")]
    BatchTooSmall { batch: usize, devices: usize },
}

/// The contiguous shares `(start, len)` of a batch of `batch` images over `devices` devices:
/// sizes differ by at most one, the larger ones first (numpy's `array_split`); devices left
/// without an image get no share.
pub fn shares(batch: usize, devices: usize) -> Vec<(usize, usize)> {
    let (base, extra) = (batch / devices, batch % devices);
    let mut start = 0;
    (0..devices)
        .map(|i| {
            let share = (start, base + usize::from(i < extra));
            start += share.1;
            share
        })
        .filter(|&(_, len)| len > 0)
        .collect()
}

/// Devices one run trains on at most (far beyond any machine's GPUs; each replica holds a
/// copy of the model).
pub const MAX_DEVICES: usize = 256;

impl<C: DenoiserConfig> Trainer<C> {
    /// Runs every step on all of `devices` at once, the first being the main one: the device
    /// this trainer was created on, where the weights, the optimizer and the EMA stay (so
    /// saving a state works as before, and a saved run may resume on any number of devices).
    /// Each device takes a contiguous share of the batch ([`shares`]), on its own thread (so
    /// native only: wasm32 has no threads, and the tab trains on one device). One device is the
    /// single-device step itself.
    pub fn with_devices(mut self, devices: Vec<Device>) -> Result<Self, DevicesError> {
        match devices.first() {
            None => return Err(DevicesError::NoDevices),
            Some(main) if *main != self.device => return Err(DevicesError::NotMain),
            Some(_) => {}
        }
        if devices.len() > self.config.batch_size {
            return Err(DevicesError::BatchTooSmall { batch: self.config.batch_size, devices: devices.len() });
        }
        self.devices = devices;
        Ok(self)
    }

    /// [`Trainer::step_batch`] over `self.devices`.
    pub(super) fn step_parallel(&mut self, batch: Batch) -> Tensor<1> {
        let Batch { images: x0, classes } = batch;
        let dims = x0.dims();
        // 1. t, ε and the dropped labels of the whole batch, drawn as on one device
        let main = self.device.clone();
        let (timesteps, noise, classes) = self.draw_step(dims, classes, &main);
        // 2. on each device, its share: forward, loss × B_i / B, backward; gradients to main
        let shares = shares(dims[0], self.devices.len());
        let results: Vec<(Tensor<1>, GradientsParams)> = thread::scope(|scope| {
            let workers: Vec<_> = shares
                .iter()
                .zip(&self.devices)
                .enumerate()
                .map(|(i, (&(start, len), device))| {
                    let device = device.clone().autodiff();
                    // The main replica is the model itself; the others start from a copy of its
                    // weights (same parameter ids, so their gradients add up by id).
                    let replica = if i == 0 { self.model.clone() } else { self.model.clone().fork(&device) };
                    let x0 = x0.clone().narrow(0, start, len).to_device(&device);
                    let noise = noise.clone().narrow(0, start, len).to_device(&device);
                    let timesteps = &timesteps[start..start + len];
                    let classes = classes.as_ref().map(|c| &c[start..start + len]);
                    let (schedule, main, gamma) = (&self.schedule, &main, self.config.min_snr_gamma);
                    let weight = len as f64 / dims[0] as f64;
                    scope.spawn(move || {
                        let loss = denoising_loss(&replica, schedule, x0, noise, timesteps, classes, gamma).mul_scalar(weight);
                        let grads = GradientsParams::from_grads(loss.backward(), &replica).to_device(main, &replica);
                        (loss.detach().to_device(main), grads)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("a device's share of the step panicked")).collect()
        });
        // 3. sum the gradients and the weighted losses on the main device; one Adam step there
        let mut accumulator = GradientsAccumulator::new();
        let mut total: Option<Tensor<1>> = None;
        for (loss, grads) in results {
            accumulator.accumulate(&self.model, grads);
            total = Some(total.map_or(loss.clone(), |t| t + loss));
        }
        self.apply(accumulator.grads());
        total.expect("a batch has at least one share")
    }
}

#[cfg(test)]
mod tests {
    use burn::module::{ModuleVisitor, Param};

    use super::*;
    use crate::data::ImageSet;
    use burn::tensor::DeviceKind;
    use crate::model::{Preset, UNet, UNetConfig};
    use crate::spec::RunSpec;

    /// Eight 28×28 grey images labelled 0..4 twice.
    fn eight_images() -> ImageSet {
        let pixels = (0..8 * 784).map(|i| ((i * 7) % 253) as u8).collect();
        ImageSet::new(28, 28, 1, pixels, vec![0, 1, 2, 3, 0, 1, 2, 3]).unwrap()
    }

    /// Every weight, flattened, in visiting order.
    struct Weights(Vec<f32>);

    impl ModuleVisitor for Weights {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().try_to_vec::<f32>().unwrap());
        }
    }

    fn weights(trainer: &Trainer) -> Vec<f32> {
        let mut w = Weights(Vec::new());
        trainer.model.valid().visit(&mut w);
        w.0
    }

    /// `steps` steps from `initial` on `devices` replicas: the losses and the final weights.
    fn run(initial: &UNet, model: &UNetConfig, config: RunSpec, devices: usize, steps: usize) -> (Vec<f32>, Vec<f32>) {
        // On the CPU burn has one device (burn-flex's `FlexDevice` always has id 0), so both
        // replicas are on it: this tests the split, the weighting and the accumulation of the
        // gradients, not a transfer between devices.
        let device = Device::flex();
        let trainer = Trainer::from_model(initial.clone(), model.clone(), config, &device);
        let mut trainer = trainer.with_devices(vec![device; devices]).unwrap();
        let set = eight_images();
        let losses = (0..steps)
            .map(|_| {
                let batch = trainer.next_labelled_batch(&set).unwrap();
                trainer.step_batch(batch).into_data().try_to_vec::<f32>().unwrap()[0]
            })
            .collect();
        (losses, weights(&trainer))
    }

    /// |a − b| ≤ relative · max(|a|, |b|) + absolute, element by element.
    fn assert_close(a: &[f32], b: &[f32], relative: f32, absolute: f32, what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= relative * x.abs().max(y.abs()) + absolute, "{what} {i}: {x} vs {y}");
        }
    }

    /// The weights' tolerance after `steps` Adam steps of `lr`. Adam moves a weight by
    /// lr · m̂ / (√v̂ + ε) with ε = 1e-8, so a gradient near zero, whose last bits depend on the
    /// order of the sums, can move its weight by a different fraction of lr (seen: 4e-6 after
    /// three steps of 1e-3). Allow 1% of the distance the steps can move a weight.
    fn weight_tolerance(steps: usize, lr: f64) -> f32 {
        0.01 * (steps as f64 * lr) as f32
    }

    #[test]
    fn shares_are_contiguous_and_differ_by_at_most_one() {
        assert_eq!(shares(4, 2), [(0, 2), (2, 2)]);
        assert_eq!(shares(5, 2), [(0, 3), (3, 2)]);
        assert_eq!(shares(8, 3), [(0, 3), (3, 3), (6, 2)]);
        assert_eq!(shares(3, 1), [(0, 3)]);
        assert_eq!(shares(1, 2), [(0, 1)]);
    }

    #[test]
    fn two_devices_give_the_losses_and_weights_of_one_at_the_same_global_batch() {
        // The reference is the single-device run; the sums differ only in order (two halves of
        // the batch's mean loss and of its gradients, added on the main device).
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(4).with_seed(11).with_learning_rate(1e-3);
        let model = Preset::Tiny.config();
        // One set of initial weights for both runs (tests share the device's seeded generator).
        let initial = model.init(&Device::flex());
        let (one, one_weights) = run(&initial, &model, config.clone(), 1, 3);
        let (two, two_weights) = run(&initial, &model, config, 2, 3);
        assert_close(&one, &two, 1e-5, 0.0, "loss at step");
        assert_close(&one_weights, &two_weights, 1e-5, weight_tolerance(3, 1e-3), "weight");
    }

    #[test]
    fn an_uneven_split_still_trains_on_the_batch_mean() {
        // 3 images over 2 devices: shares of 2 and 1, weighted 2/3 and 1/3. A class-conditional
        // model, so the dropped labels are split with their images.
        let config = RunSpec::PAPER.with_random_flip(false).with_batch_size(3).with_seed(5).with_class_dropout(0.5);
        let lr = config.learning_rate;
        let model = Preset::Tiny.config().with_num_class_embeds(Some(5));
        let initial = model.init(&Device::flex());
        let (one, one_weights) = run(&initial, &model, config.clone(), 1, 2);
        let (two, two_weights) = run(&initial, &model, config, 2, 2);
        assert_close(&one, &two, 1e-5, 0.0, "loss at step");
        assert_close(&one_weights, &two_weights, 1e-5, weight_tolerance(2, lr), "weight");
    }

    #[test]
    fn devices_that_cannot_be_used_are_refused() {
        let device = Device::flex();
        let trainer = |batch: usize| Trainer::new(Preset::Tiny.config(), RunSpec::PAPER.with_random_flip(false).with_batch_size(batch), &device);
        assert_eq!(trainer(2).with_devices(vec![]).err(), Some(DevicesError::NoDevices));
        let too_many = trainer(2).with_devices(vec![device.clone(); 3]).err();
        assert_eq!(too_many, Some(DevicesError::BatchTooSmall { batch: 2, devices: 3 }));
        // Named only, never opened: no GPU is needed.
        let gpu = Device::wgpu(DeviceKind::DefaultDevice);
        let not_main = trainer(2).with_devices(vec![gpu, device.clone()]).err();
        assert_eq!(not_main, Some(DevicesError::NotMain));
    }
}
