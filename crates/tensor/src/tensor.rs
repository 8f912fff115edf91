//! `Tensor`: an immutable, shared, dense f32 array on a device. Every op checks its arguments
//! here, names itself in any error, and hands dense buffers to the device's backend.
use crate::backend::*;
use crate::storage::Storage;
use crate::{Device, Error, Result, Rng, Shape};
use std::sync::Arc;

#[derive(Clone)]
pub struct Tensor {
    storage: Arc<Storage>,
    shape: Shape,
}

/// Runs a backend method on one storage, keeping the device.
macro_rules! on_storage {
    ($s:expr, |$x:ident| $body:expr) => {
        match $s {
            Storage::Cpu($x) => Storage::Cpu($body?),
            #[cfg(feature = "cuda")]
            Storage::Cuda($x) => Storage::Cuda($body?),
        }
    };
}

/// Runs a backend method on two storages of the same device (checked before).
macro_rules! on_storages {
    ($a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {
        match ($a, $b) {
            (Storage::Cpu($x), Storage::Cpu($y)) => Storage::Cpu($body?),
            #[cfg(feature = "cuda")]
            (Storage::Cuda($x), Storage::Cuda($y)) => Storage::Cuda($body?),
            #[cfg(feature = "cuda")]
            _ => {
                return Err(Error::Cuda {
                    op: "dispatch",
                    why: "operands on different devices".into(),
                })
            }
        }
    };
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {:?})", self.shape, self.device())
    }
}

impl Tensor {
    fn wrap(storage: Storage, shape: Shape) -> Tensor {
        debug_assert_eq!(storage.len(), shape.numel());
        Tensor {
            storage: Arc::new(storage),
            shape,
        }
    }

    // ---- construction ----

    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::DataLength {
                op: "from_vec",
                len: data.len(),
                shape,
            });
        }
        Ok(Tensor::wrap(
            Storage::from_vec(data, device, "from_vec")?,
            shape,
        ))
    }
    pub fn from_slice(data: &[f32], shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape, device)
    }
    pub fn full(value: f32, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(vec![value; shape.numel()], shape, device)
    }
    pub fn zeros(shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, device)
    }
    pub fn ones(shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, device)
    }
    /// A rank-0 tensor.
    pub fn scalar(value: f32, device: Device) -> Result<Tensor> {
        Tensor::from_vec(vec![value], Shape::new(vec![]), device)
    }
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f32,
        std: f32,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(rng.normal_vec(shape.numel(), mean, std), shape, device)
    }
    /// Uniform on [lo, hi).
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        lo: f32,
        hi: f32,
        rng: &mut Rng,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        Tensor::from_vec(rng.uniform_vec(shape.numel(), lo, hi), shape, device)
    }
    /// One-hot encoding of an integer label map `labels` of shape [n, h, w] into [n, classes, h, w].
    /// A label ≥ `classes` is an error naming the value and the allowed range.
    pub fn one_hot(
        labels: &[u32],
        [n, h, w]: [usize; 3],
        classes: usize,
        device: Device,
    ) -> Result<Tensor> {
        let shape = Shape::new(vec![n, h, w]);
        if labels.len() != n * h * w {
            return Err(Error::DataLength {
                op: "one_hot",
                len: labels.len(),
                shape,
            });
        }
        let mut out = vec![0f32; n * classes * h * w];
        for (i, &l) in labels.iter().enumerate() {
            if l as usize >= classes {
                return Err(Error::invalid(
                    "one_hot",
                    &shape,
                    format!("label {l} at index {i} is outside 0..{classes}"),
                ));
            }
            let (img, px) = (i / (h * w), i % (h * w));
            out[(img * classes + l as usize) * h * w + px] = 1.0;
        }
        Tensor::from_vec(out, [n, classes, h, w], device)
    }

    // ---- access ----

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    pub fn device(&self) -> Device {
        self.storage.device()
    }
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.storage.to_vec()
    }
    /// The single value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::invalid(
                "to_scalar",
                &self.shape,
                "tensor has more than one element",
            ));
        }
        Ok(self.to_vec()?[0])
    }
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        Ok(Tensor::wrap(
            Storage::from_vec(self.to_vec()?, device, "to_device")?,
            self.shape.clone(),
        ))
    }
    /// Whether both handles share one buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    fn same_device(&self, op: &'static str, other: &Tensor) -> Result<()> {
        if self.device() != other.device() {
            return Err(self.device_mismatch(op, other));
        }
        Ok(())
    }
    /// `other` on this tensor's device and of its shape (`why` explains the rule when it is not).
    fn same_device_and_shape(&self, op: &'static str, other: &Tensor, why: &str) -> Result<()> {
        self.same_device(op, other)?;
        if other.shape != self.shape {
            return Err(Error::mismatch(op, &self.shape, &other.shape, why));
        }
        Ok(())
    }
    fn device_mismatch(&self, op: &'static str, other: &Tensor) -> Error {
        Error::DeviceMismatch {
            op,
            lhs: self.device(),
            rhs: other.device(),
        }
    }

    // ---- elementwise ----

    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.unary(op)),
            self.shape.clone(),
        ))
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Rsqrt)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn sign(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sign)
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    pub fn leaky_relu(&self, slope: f32) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn powf(&self, exponent: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(exponent))
    }
    pub fn sqr(&self) -> Result<Tensor> {
        self.mul(self)
    }
    pub fn clamp(&self, min: f32, max: f32) -> Result<Tensor> {
        // Written so that a NaN bound is rejected too.
        if min
            .partial_cmp(&max)
            .is_none_or(|o| o == std::cmp::Ordering::Greater)
        {
            return Err(Error::invalid(
                "clamp",
                &self.shape,
                format!("min {min} > max {max}"),
            ));
        }
        self.unary(UnaryOp::Clamp(min, max))
    }
    /// x·mul + add.
    pub fn affine(&self, mul: f32, add: f32) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn add_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// 1.0 where `x op s` holds, else 0.0.
    pub fn cmp_scalar(&self, op: CmpOp, s: f32) -> Result<Tensor> {
        self.unary(UnaryOp::CmpScalar(op, s))
    }

    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        let name = "binary";
        self.same_device(name, rhs)?;
        let out = Shape::broadcast(name, &self.shape, &rhs.shape)?;
        let s = on_storages!(&*self.storage, &*rhs.storage, |a, b| a.binary(
            &self.shape,
            b,
            &rhs.shape,
            &out,
            op
        ));
        Ok(Tensor::wrap(s, out))
    }
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Pow)
    }
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Maximum)
    }
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Minimum)
    }
    /// 1.0 where `self op rhs` holds (broadcast), else 0.0.
    pub fn cmp(&self, rhs: &Tensor, op: CmpOp) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Cmp(op))
    }
    /// `self` ≠ 0 selects `on_true`, else `on_false`; all three broadcast together.
    pub fn where_cond(&self, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        let op = "where_cond";
        self.same_device(op, on_true)?;
        self.same_device(op, on_false)?;
        let out = Shape::broadcast(
            op,
            &Shape::broadcast(op, &self.shape, &on_true.shape)?,
            &on_false.shape,
        )?;
        let s =
            match (&*self.storage, &*on_true.storage, &*on_false.storage) {
                (Storage::Cpu(c), Storage::Cpu(t), Storage::Cpu(f)) => Storage::Cpu(c.where_cond(
                    &self.shape,
                    (t, &on_true.shape),
                    (f, &on_false.shape),
                    &out,
                )?),
                #[cfg(feature = "cuda")]
                (Storage::Cuda(c), Storage::Cuda(t), Storage::Cuda(f)) => Storage::Cuda(
                    c.where_cond(&self.shape, (t, &on_true.shape), (f, &on_false.shape), &out)?,
                ),
                #[cfg(feature = "cuda")]
                _ => {
                    return Err(Error::DeviceMismatch {
                        op,
                        lhs: self.device(),
                        rhs: on_true.device(),
                    })
                }
            };
        Ok(Tensor::wrap(s, out))
    }

    // ---- reductions ----

    fn reduce_axes(&self, op: &'static str, axes: &[usize]) -> Result<Vec<usize>> {
        let mut a = axes.to_vec();
        a.sort_unstable();
        a.dedup();
        for &x in &a {
            self.shape.axis(op, x)?;
        }
        Ok(a)
    }
    fn reduced_shape(&self, axes: &[usize], keepdim: bool) -> Shape {
        let dims = self.dims().iter().enumerate().filter_map(|(i, &d)| {
            match (axes.contains(&i), keepdim) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            }
        });
        Shape::new(dims.collect::<Vec<_>>())
    }
    /// Reduces over `axes` (any order, duplicates ignored), keeping them as size-1 dims if `keepdim`.
    pub fn reduce(&self, axes: &[usize], keepdim: bool, op: ReduceOp) -> Result<Tensor> {
        let axes = self.reduce_axes("reduce", axes)?;
        let s = on_storage!(&*self.storage, |x| x.reduce(&self.shape, &axes, op));
        Ok(Tensor::wrap(s, self.reduced_shape(&axes, keepdim)))
    }
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(axes, keepdim, ReduceOp::Sum)
    }
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        let axes = self.reduce_axes("mean", axes)?;
        let n: usize = axes.iter().map(|&a| self.dims()[a]).product();
        self.sum(&axes, keepdim)?.mul_scalar(1.0 / n as f32)
    }
    pub fn var(&self, axes: &[usize], unbiased: bool, keepdim: bool) -> Result<Tensor> {
        self.reduce(axes, keepdim, ReduceOp::Var { unbiased })
    }
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(axes, keepdim, ReduceOp::Max)
    }
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Result<Tensor> {
        self.reduce(axes, keepdim, ReduceOp::Min)
    }
    fn all_axes(&self) -> Vec<usize> {
        (0..self.rank()).collect()
    }
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&self.all_axes(), false)
    }
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&self.all_axes(), false)
    }
    /// Sums a broadcast result back to `shape` (the adjoint of `broadcast_to`).
    pub fn sum_to(&self, shape: &Shape) -> Result<Tensor> {
        if &self.shape == shape {
            return Ok(self.clone());
        }
        if !shape.broadcasts_to(&self.shape) {
            return Err(Error::mismatch(
                "sum_to",
                &self.shape,
                shape,
                "target does not broadcast to the source",
            ));
        }
        let lead = self.rank() - shape.rank();
        let axes: Vec<usize> = (0..self.rank())
            .filter(|&i| i < lead || (shape.dims()[i - lead] == 1 && self.dims()[i] != 1))
            .collect();
        self.sum(&axes, true)?.reshape(shape.clone())
    }

    // ---- linear algebra ----

    /// [m, k]·[k, n], or batched [b, m, k]·[b or none, k, n].
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let op = "matmul";
        self.same_device(op, rhs)?;
        let bad = |why: &str| Error::mismatch(op, &self.shape, &rhs.shape, why);
        let (batch, m, k) = match *self.dims() {
            [m, k] => (None, m, k),
            [b, m, k] => (Some(b), m, k),
            _ => return Err(bad("lhs must be 2-d or 3-d")),
        };
        let (rb, k2, n) = match *rhs.dims() {
            [k, n] => (None, k, n),
            [b, k, n] => (Some(b), k, n),
            _ => return Err(bad("rhs must be 2-d or 3-d")),
        };
        if k != k2 {
            return Err(bad("inner dimensions differ"));
        }
        let b = match (batch, rb) {
            (Some(a), Some(b)) if a != b => return Err(bad("batch sizes differ")),
            (None, Some(_)) => return Err(bad("batched rhs needs a batched lhs")),
            (b, _) => b,
        };
        let s = on_storages!(&*self.storage, &*rhs.storage, |x, y| x.matmul(
            y,
            b.unwrap_or(1),
            rb.is_some(),
            m,
            k,
            n
        ));
        let shape = match b {
            Some(b) => Shape::new(vec![b, m, n]),
            None => Shape::new(vec![m, n]),
        };
        Ok(Tensor::wrap(s, shape))
    }

    // ---- layout ----

    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(Error::mismatch(
                "reshape",
                &self.shape,
                &shape,
                "element counts differ",
            ));
        }
        Ok(Tensor {
            storage: self.storage.clone(),
            shape,
        })
    }
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let mut seen = vec![false; self.rank()];
        if perm.len() != self.rank()
            || perm
                .iter()
                .any(|&p| p >= self.rank() || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "permute",
                &self.shape,
                format!("{perm:?} is not a permutation of the axes"),
            ));
        }
        let shape = Shape::new(perm.iter().map(|&p| self.dims()[p]).collect::<Vec<_>>());
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(self.clone());
        }
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.permute(&self.shape, perm)),
            shape,
        ))
    }
    pub fn transpose(&self, a: usize, b: usize) -> Result<Tensor> {
        self.shape.axis("transpose", a)?;
        self.shape.axis("transpose", b)?;
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }
    /// Broadcasts to `shape` (PyTorch's `expand`), materializing the result.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape == self.shape {
            return Ok(self.clone());
        }
        if !self.shape.broadcasts_to(&shape) {
            return Err(Error::mismatch(
                "broadcast_to",
                &self.shape,
                &shape,
                "source does not broadcast to target",
            ));
        }
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.broadcast_to(&self.shape, &shape)),
            shape,
        ))
    }
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        self.broadcast_to(shape)
    }
    /// `len` entries of `axis` from `start`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Tensor> {
        self.shape.axis("narrow", axis)?;
        if start
            .checked_add(len)
            .is_none_or(|end| end > self.dims()[axis])
        {
            return Err(Error::invalid(
                "narrow",
                &self.shape,
                format!(
                    "range {start}..{} exceeds axis {axis}",
                    start.saturating_add(len)
                ),
            ));
        }
        if len == self.dims()[axis] {
            return Ok(self.clone());
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = len;
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.narrow(&self.shape, axis, start, len)),
            Shape::new(dims),
        ))
    }
    /// Entries `range` of `axis` (a `narrow` by range).
    pub fn slice(&self, axis: usize, range: std::ops::Range<usize>) -> Result<Tensor> {
        if range.start > range.end {
            return Err(Error::invalid(
                "slice",
                &self.shape,
                format!("empty range {range:?}"),
            ));
        }
        self.narrow(axis, range.start, range.end - range.start)
    }
    /// Zero-pads `axis` with `before` and `after` entries (the adjoint of `narrow`).
    pub fn pad_axis(&self, axis: usize, before: usize, after: usize) -> Result<Tensor> {
        self.shape.axis("pad_axis", axis)?;
        if before == 0 && after == 0 {
            return Ok(self.clone());
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = before
            .checked_add(after)
            .and_then(|p| p.checked_add(dims[axis]))
            .ok_or_else(|| {
                Error::invalid(
                    "pad_axis",
                    &self.shape,
                    format!("padding {before} + {after} overflows"),
                )
            })?;
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.pad_axis(
                &self.shape,
                axis,
                before,
                after
            )),
            Shape::new(dims),
        ))
    }
    pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let op = "concat";
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid(op, &Shape::default(), "no tensors"))?;
        first.shape.axis(op, axis)?;
        let mut dims = first.dims().to_vec();
        dims[axis] = 0;
        for p in parts {
            first.same_device(op, p)?;
            let same = p.rank() == first.rank()
                && p.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (a, b))| i == axis || a == b);
            if !same {
                return Err(Error::mismatch(
                    op,
                    &first.shape,
                    &p.shape,
                    format!("dims other than {axis} must agree"),
                ));
            }
            dims[axis] += p.dims()[axis];
        }
        let s = match &*first.storage {
            Storage::Cpu(_) => {
                let cpu = parts
                    .iter()
                    .map(|p| match &*p.storage {
                        Storage::Cpu(s) => Ok((s, &p.shape)),
                        #[cfg(feature = "cuda")]
                        Storage::Cuda(_) => Err(first.device_mismatch(op, p)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Storage::Cpu(crate::cpu::CpuStorage::concat(&cpu, axis)?)
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(_) => {
                let gpu = parts
                    .iter()
                    .map(|p| match &*p.storage {
                        Storage::Cuda(s) => Ok((s, &p.shape)),
                        Storage::Cpu(_) => Err(first.device_mismatch(op, p)),
                    })
                    .collect::<Result<Vec<_>>>()?;
                Storage::Cuda(crate::cuda::CudaStorage::concat(&gpu, axis)?)
            }
        };
        Ok(Tensor::wrap(s, Shape::new(dims)))
    }
    /// Splits `axis` into consecutive pieces of the given sizes.
    pub fn split(&self, sizes: &[usize], axis: usize) -> Result<Vec<Tensor>> {
        self.shape.axis("split", axis)?;
        if sizes.iter().sum::<usize>() != self.dims()[axis] {
            return Err(Error::invalid(
                "split",
                &self.shape,
                format!("sizes {sizes:?} do not add up to axis {axis}"),
            ));
        }
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let t = self.narrow(axis, start, len);
                start += len;
                t
            })
            .collect()
    }

    // ---- spatial (NCHW) ----

    fn check_pad2d(
        &self,
        op: &'static str,
        [n, c, h, w]: [usize; 4],
        [l, r, t, b]: [usize; 4],
        mode: PadMode,
    ) -> Result<()> {
        let _ = (n, c);
        let limit_ok = match mode {
            PadMode::Zero => true,
            PadMode::Reflect => l < w && r < w && t < h && b < h,
            PadMode::Replicate => h > 0 && w > 0,
        };
        if !limit_ok {
            return Err(Error::invalid(
                op,
                &self.shape,
                format!("{mode:?} padding [{l}, {r}, {t}, {b}] too large for {h}×{w}"),
            ));
        }
        Ok(())
    }
    /// Pads H and W by [left, right, top, bottom] like `F.pad(x, (l, r, t, b), mode)`.
    pub fn pad2d(&self, pads: [usize; 4], mode: PadMode) -> Result<Tensor> {
        let d = self.shape.nchw("pad2d")?;
        self.check_pad2d("pad2d", d, pads, mode)?;
        let out = [
            d[0],
            d[1],
            d[2] + pads[2] + pads[3],
            d[3] + pads[0] + pads[1],
        ];
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.pad2d(d, pads, mode)),
            Shape::from(out),
        ))
    }
    /// Adjoint of [`Tensor::pad2d`]: `self` has the padded shape.
    pub fn pad2d_adjoint(&self, pads: [usize; 4], mode: PadMode) -> Result<Tensor> {
        let d = self.shape.nchw("pad2d_adjoint")?;
        if d[2] < pads[2] + pads[3] || d[3] < pads[0] + pads[1] {
            return Err(Error::invalid(
                "pad2d_adjoint",
                &self.shape,
                format!("pads {pads:?} exceed the padded size"),
            ));
        }
        let inner = [
            d[0],
            d[1],
            d[2] - pads[2] - pads[3],
            d[3] - pads[0] - pads[1],
        ];
        self.check_pad2d("pad2d_adjoint", inner, pads, mode)?;
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.pad2d_adjoint(d, pads, mode)),
            Shape::from(inner),
        ))
    }

    /// 2-d cross-correlation like `F.conv2d(x, weight, bias, stride, padding, dilation)`;
    /// x `[N, C, H, W]`, weight `[Co, C, kh, kw]`, bias `[Co]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: Conv2dParams,
    ) -> Result<Tensor> {
        let op = "conv2d";
        self.same_device(op, weight)?;
        let x = self.shape.nchw(op)?;
        let w = weight.shape.nchw(op)?;
        if w[1] != x[1] || x[1] == 0 {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &weight.shape,
                "input channels differ",
            ));
        }
        let [ho, wo] = p.output_hw([x[2], x[3]], [w[2], w[3]]).ok_or_else(|| {
            Error::mismatch(
                op,
                &self.shape,
                &weight.shape,
                format!("kernel does not fit with {p:?}"),
            )
        })?;
        let s = on_storages!(&*self.storage, &*weight.storage, |a, b| a
            .conv2d(x, b, w, p));
        let out = Tensor::wrap(s, Shape::from([x[0], w[0], ho, wo]));
        match bias {
            None => Ok(out),
            Some(b) => {
                if b.dims() != [w[0]] {
                    return Err(Error::mismatch(
                        op,
                        &weight.shape,
                        &b.shape,
                        "bias must be [out_channels]",
                    ));
                }
                out.add(&b.reshape([1, w[0], 1, 1])?)
            }
        }
    }
    /// Gradient of `conv2d` with respect to its input, given the output gradient `self`
    /// [N, Co, Ho, Wo]: a transposed convolution whose output is [N, C, in_hw].
    pub fn conv2d_input_grad(
        &self,
        weight: &Tensor,
        in_hw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        let op = "conv2d_input_grad";
        self.same_device(op, weight)?;
        let g = self.shape.nchw(op)?;
        let w = weight.shape.nchw(op)?;
        if g[1] != w[0] || w[1] == 0 {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &weight.shape,
                "gradient channels differ from out_channels",
            ));
        }
        if p.output_hw(in_hw, [w[2], w[3]]) != Some([g[2], g[3]]) {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &weight.shape,
                format!("input size {in_hw:?} does not give this output with {p:?}"),
            ));
        }
        let s = on_storages!(&*self.storage, &*weight.storage, |a, b| a
            .conv2d_input_grad(g, b, w, in_hw, p));
        Ok(Tensor::wrap(
            s,
            Shape::from([g[0], w[1], in_hw[0], in_hw[1]]),
        ))
    }
    /// Gradient of `conv2d` with respect to its weight: `self` is the input [N, C, H, W],
    /// `grad_out` the output gradient [N, Co, Ho, Wo]; the result is [Co, C, kh, kw].
    pub fn conv2d_weight_grad(
        &self,
        grad_out: &Tensor,
        khw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Tensor> {
        let op = "conv2d_weight_grad";
        self.same_device(op, grad_out)?;
        let x = self.shape.nchw(op)?;
        let g = grad_out.shape.nchw(op)?;
        if x[0] != g[0] || x[1] == 0 {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &grad_out.shape,
                "batch sizes differ",
            ));
        }
        if p.output_hw([x[2], x[3]], khw) != Some([g[2], g[3]]) {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &grad_out.shape,
                format!("kernel {khw:?} does not give this output with {p:?}"),
            ));
        }
        let s = on_storages!(&*self.storage, &*grad_out.storage, |a, b| a
            .conv2d_weight_grad(x, b, g, khw, p));
        Ok(Tensor::wrap(s, Shape::from([g[1], x[1], khw[0], khw[1]])))
    }

    pub fn avg_pool2d(&self, p: Pool2dParams) -> Result<Tensor> {
        let d = self.shape.nchw("avg_pool2d")?;
        let [ho, wo] = p.output_hw([d[2], d[3]]).ok_or_else(|| {
            Error::invalid("avg_pool2d", &self.shape, format!("bad pooling {p:?}"))
        })?;
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.avg_pool2d(d, p)),
            Shape::from([d[0], d[1], ho, wo]),
        ))
    }
    /// Adjoint of `avg_pool2d`: `self` is pooled, the result has spatial size `in_hw`.
    pub fn avg_pool2d_adjoint(&self, in_hw: [usize; 2], p: Pool2dParams) -> Result<Tensor> {
        let d = self.shape.nchw("avg_pool2d_adjoint")?;
        if p.output_hw(in_hw) != Some([d[2], d[3]]) {
            return Err(Error::invalid(
                "avg_pool2d_adjoint",
                &self.shape,
                format!("input size {in_hw:?} does not pool to this with {p:?}"),
            ));
        }
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.avg_pool2d_adjoint(d, in_hw, p)),
            Shape::from([d[0], d[1], in_hw[0], in_hw[1]]),
        ))
    }
    /// `F.max_pool2d(x, kernel, stride, padding, dilation)` with `ceil_mode=False`; padding
    /// acts as −∞ and NaN propagates, as in PyTorch.
    pub fn max_pool2d(&self, p: MaxPool2dParams) -> Result<Tensor> {
        Ok(self.max_pool2d_with_indices(p)?.0)
    }
    fn max_pool2d_geometry(
        &self,
        op: &'static str,
        hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<[usize; 2]> {
        // Window offsets are stored in f32, exact below 2²⁴.
        let area_ok = p.kernel[0]
            .checked_mul(p.kernel[1])
            .is_some_and(|a| a < 1 << 24);
        match p.output_hw(hw) {
            Some(out) if area_ok => Ok(out),
            _ => Err(Error::invalid(
                op,
                &self.shape,
                format!("bad pooling {p:?} for a {}×{} input (padding must be at most half the kernel, the dilated window must fit the padded input)", hw[0], hw[1]),
            )),
        }
    }
    /// Max pooling and, per output, the offset `ky·kw + kx` of the chosen element within its
    /// window, as an f32 tensor of the pooled shape (−1 where a window lies wholly in the
    /// padding). Ties go to the first position in row-major window order. The offsets are what
    /// [`Tensor::max_pool2d_scatter`] and [`Tensor::max_pool2d_gather`] take.
    pub fn max_pool2d_with_indices(&self, p: MaxPool2dParams) -> Result<(Tensor, Tensor)> {
        let op = "max_pool2d";
        let d = self.shape.nchw(op)?;
        let [ho, wo] = self.max_pool2d_geometry(op, [d[2], d[3]], p)?;
        let shape = Shape::from([d[0], d[1], ho, wo]);
        let (v, i) = match &*self.storage {
            Storage::Cpu(s) => {
                let (v, i) = s.max_pool2d(d, p)?;
                (Storage::Cpu(v), Storage::Cpu(i))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(s) => {
                let (v, i) = s.max_pool2d(d, p)?;
                (Storage::Cuda(v), Storage::Cuda(i))
            }
        };
        Ok((Tensor::wrap(v, shape.clone()), Tensor::wrap(i, shape)))
    }
    /// Adds each pooled value of `self` [N, C, Ho, Wo] into the input position named by its
    /// window offset in `indices` (same shape, from [`Tensor::max_pool2d_with_indices`]); the
    /// result is [N, C, in_hw] (the gradient of max pooling). Offsets that name no input
    /// position (−1, out of range) contribute nothing.
    pub fn max_pool2d_scatter(
        &self,
        indices: &Tensor,
        in_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Tensor> {
        let op = "max_pool2d_scatter";
        self.same_device(op, indices)?;
        let d = self.shape.nchw(op)?;
        if indices.shape != self.shape {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &indices.shape,
                "indices must have the pooled shape",
            ));
        }
        if self.max_pool2d_geometry(op, in_hw, p)? != [d[2], d[3]] {
            return Err(Error::invalid(
                op,
                &self.shape,
                format!("input size {in_hw:?} does not pool to this with {p:?}"),
            ));
        }
        let s = on_storages!(&*self.storage, &*indices.storage, |a, b| a
            .max_pool2d_scatter(d, b, in_hw, p));
        Ok(Tensor::wrap(
            s,
            Shape::from([d[0], d[1], in_hw[0], in_hw[1]]),
        ))
    }
    /// Reads `self` [N, C, H, W] at the input position each window offset in `indices`
    /// [N, C, Ho, Wo] names (0 where it names none): the adjoint of
    /// [`Tensor::max_pool2d_scatter`]. With the offsets of `x.max_pool2d_with_indices`,
    /// `x.max_pool2d_gather(..)` is `x.max_pool2d(..)` wherever a window has an input element.
    pub fn max_pool2d_gather(&self, indices: &Tensor, p: MaxPool2dParams) -> Result<Tensor> {
        let op = "max_pool2d_gather";
        self.same_device(op, indices)?;
        let d = self.shape.nchw(op)?;
        let out = self.max_pool2d_geometry(op, [d[2], d[3]], p)?;
        let want = Shape::from([d[0], d[1], out[0], out[1]]);
        if indices.shape != want {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &indices.shape,
                format!("indices must have the pooled shape {want}"),
            ));
        }
        let s = on_storages!(&*self.storage, &*indices.storage, |a, b| a
            .max_pool2d_gather(d, b, out, p));
        Ok(Tensor::wrap(s, want))
    }
    /// Resizes H and W to `out_hw` (`F.interpolate(x, size, mode)`).
    pub fn upsample2d(&self, out_hw: [usize; 2], mode: Interpolation) -> Result<Tensor> {
        let d = self.shape.nchw("upsample2d")?;
        if d[2] == 0 || d[3] == 0 || out_hw[0] == 0 || out_hw[1] == 0 {
            return Err(Error::invalid(
                "upsample2d",
                &self.shape,
                format!("cannot resize to {out_hw:?}"),
            ));
        }
        // Every mode is the identity at the same size (SPADE resizes its label map to each
        // layer's size, the largest of which is the map's own).
        if [d[2], d[3]] == out_hw {
            return Ok(self.clone());
        }
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.upsample2d(d, out_hw, mode)),
            Shape::from([d[0], d[1], out_hw[0], out_hw[1]]),
        ))
    }
    pub fn upsample_nearest2d(&self, out_hw: [usize; 2]) -> Result<Tensor> {
        self.upsample2d(out_hw, Interpolation::Nearest)
    }
    pub fn upsample_bilinear2d(&self, out_hw: [usize; 2], align_corners: bool) -> Result<Tensor> {
        self.upsample2d(out_hw, Interpolation::Bilinear { align_corners })
    }
    /// Adjoint of `upsample2d`: `self` is the resized tensor, the result has size `in_hw`.
    pub fn upsample2d_adjoint(&self, in_hw: [usize; 2], mode: Interpolation) -> Result<Tensor> {
        let d = self.shape.nchw("upsample2d_adjoint")?;
        if d[2] == 0 || d[3] == 0 || in_hw[0] == 0 || in_hw[1] == 0 {
            return Err(Error::invalid(
                "upsample2d_adjoint",
                &self.shape,
                format!("cannot resize to {in_hw:?}"),
            ));
        }
        Ok(Tensor::wrap(
            on_storage!(&*self.storage, |s| s.upsample2d_adjoint(d, in_hw, mode)),
            Shape::from([d[0], d[1], in_hw[0], in_hw[1]]),
        ))
    }
    /// Normalization statistics of an [N, C, H, W] tensor: the mean and 1/sqrt(σ² + ε) (σ² the
    /// biased variance, as PyTorch normalizes with), per plane when `instance` (shapes
    /// [N, C, 1, 1]) or per channel over N, H, W as batch norm in training mode ([1, C, 1, 1]).
    pub fn norm_stats(&self, instance: bool, eps: f32) -> Result<(Tensor, Tensor)> {
        let op = "norm_stats";
        let [n, c, h, w] = self.shape.nchw(op)?;
        if eps.is_nan() || eps <= 0.0 {
            return Err(Error::invalid(
                op,
                &self.shape,
                format!("eps {eps} must be > 0"),
            ));
        }
        if h * w == 0 || n * c == 0 {
            return Err(Error::invalid(
                op,
                &self.shape,
                "statistics of an empty group",
            ));
        }
        let (mean, rstd) = match &*self.storage {
            Storage::Cpu(x) => {
                let (m, r) = x.norm_stats([n, c, h, w], instance, eps)?;
                (Storage::Cpu(m), Storage::Cpu(r))
            }
            #[cfg(feature = "cuda")]
            Storage::Cuda(x) => {
                let (m, r) = x.norm_stats([n, c, h, w], instance, eps)?;
                (Storage::Cuda(m), Storage::Cuda(r))
            }
        };
        let stats_shape = Shape::from([if instance { n } else { 1 }, c, 1, 1]);
        Ok((
            Tensor::wrap(mean, stats_shape.clone()),
            Tensor::wrap(rstd, stats_shape),
        ))
    }

    /// Checks statistics from [`Tensor::norm_stats`] against this [N, C, H, W] input.
    fn check_norm_stats(
        &self,
        op: &'static str,
        mean: &Tensor,
        rstd: &Tensor,
        instance: bool,
    ) -> Result<[usize; 4]> {
        let d = self.shape.nchw(op)?;
        let expected = Shape::from([if instance { d[0] } else { 1 }, d[1], 1, 1]);
        for t in [mean, rstd] {
            self.same_device(op, t)?;
            if t.shape != expected {
                return Err(Error::mismatch(
                    op,
                    &expected,
                    &t.shape,
                    "statistics must come from norm_stats of this input",
                ));
            }
        }
        Ok(d)
    }

    /// One step of PyTorch's `torch.optim.Adam` for the parameter `self`, its gradient and the
    /// moments `exp_avg`, `exp_avg_sq` (zeros before the first step), in one pass: returns the
    /// new parameter and moments. All four tensors share one shape and device.
    pub fn adam_step(
        &self,
        grad: &Tensor,
        exp_avg: &Tensor,
        exp_avg_sq: &Tensor,
        s: AdamStep,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = "adam_step";
        for t in [grad, exp_avg, exp_avg_sq] {
            self.same_device_and_shape(
                op,
                t,
                "gradient and moments must have the parameter's shape",
            )?;
        }
        let (p, m, v) = match (
            &*self.storage,
            &*grad.storage,
            &*exp_avg.storage,
            &*exp_avg_sq.storage,
        ) {
            (Storage::Cpu(p), Storage::Cpu(g), Storage::Cpu(m), Storage::Cpu(v)) => {
                let (p, m, v) = p.adam_step(g, m, v, s)?;
                (Storage::Cpu(p), Storage::Cpu(m), Storage::Cpu(v))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(p), Storage::Cuda(g), Storage::Cuda(m), Storage::Cuda(v)) => {
                let (p, m, v) = p.adam_step(g, m, v, s)?;
                (Storage::Cuda(p), Storage::Cuda(m), Storage::Cuda(v))
            }
            #[cfg(feature = "cuda")]
            _ => unreachable!("devices checked above"),
        };
        let wrap = |st| Tensor::wrap(st, self.shape.clone());
        Ok((wrap(p), wrap(m), wrap(v)))
    }

    /// `(x − mean)·rstd` with statistics from [`Tensor::norm_stats`], then the modulation:
    /// none, per channel `x̂·γ[c] + β[c]` (γ, β with C elements), or SPADE's spatial
    /// `x̂·(1 + γ) + β` (γ, β of x's shape). One pass over x.
    pub fn norm_modulate(
        &self,
        mean: &Tensor,
        rstd: &Tensor,
        instance: bool,
        m: NormModulation<&Tensor>,
    ) -> Result<Tensor> {
        let op = "norm_modulate";
        let d = self.check_norm_stats(op, mean, rstd, instance)?;
        let channel = matches!(m, NormModulation::Channel { .. });
        let mut bad = None;
        m.map(|t| {
            let ok = if channel {
                t.numel() == d[1]
            } else {
                t.shape == self.shape
            };
            if (!ok || t.device() != self.device()) && bad.is_none() {
                bad = Some(t.shape.clone());
            }
        });
        if let Some(got) = bad {
            return Err(Error::mismatch(
                op,
                &self.shape,
                &got,
                "channel γ, β need C elements and spatial ones the input's shape, on its device",
            ));
        }
        let s = match (&*self.storage, &*mean.storage, &*rstd.storage) {
            (Storage::Cpu(x), Storage::Cpu(mu), Storage::Cpu(r)) => {
                let m = m.map(|t| match &*t.storage {
                    Storage::Cpu(s) => s,
                    #[cfg(feature = "cuda")]
                    _ => unreachable!("devices checked above"),
                });
                Storage::Cpu(x.norm_modulate(d, mu, r, instance, m)?)
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(x), Storage::Cuda(mu), Storage::Cuda(r)) => {
                let m = m.map(|t| match &*t.storage {
                    Storage::Cuda(s) => s,
                    _ => unreachable!("devices checked above"),
                });
                Storage::Cuda(x.norm_modulate(d, mu, r, instance, m)?)
            }
            #[cfg(feature = "cuda")]
            _ => return Err(self.device_mismatch(op, mean)),
        };
        Ok(Tensor::wrap(s, self.shape.clone()))
    }

    /// Gradients of `y = x̂·s`, x̂ the normalized `x` ([`Tensor::norm_modulate`] without
    /// modulation) and s = 1, or s = 1 + γ for a γ map of x's shape (SPADE); `self` is dy.
    /// Returns dx and, with `gamma`, dγ = dy·x̂ (SPADE's dβ is dy itself). Two passes.
    pub fn norm_backward(
        &self,
        x: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        instance: bool,
        gamma: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let op = "norm_backward";
        let d = x.check_norm_stats(op, mean, rstd, instance)?;
        for t in std::iter::once(self).chain(gamma) {
            x.same_device_and_shape(op, t, "dy and γ must have the input's shape")?;
        }
        let (dx, dgamma) = match (&*self.storage, &*x.storage, &*mean.storage, &*rstd.storage) {
            (Storage::Cpu(dy), Storage::Cpu(x), Storage::Cpu(mu), Storage::Cpu(r)) => {
                let gamma = gamma.map(|g| match &*g.storage {
                    Storage::Cpu(s) => s,
                    #[cfg(feature = "cuda")]
                    _ => unreachable!("devices checked above"),
                });
                let (dx, dg) = dy.norm_backward(x, d, mu, r, instance, gamma)?;
                (Storage::Cpu(dx), dg.map(Storage::Cpu))
            }
            #[cfg(feature = "cuda")]
            (Storage::Cuda(dy), Storage::Cuda(x), Storage::Cuda(mu), Storage::Cuda(r)) => {
                let gamma = gamma.map(|g| match &*g.storage {
                    Storage::Cuda(s) => s,
                    _ => unreachable!("devices checked above"),
                });
                let (dx, dg) = dy.norm_backward(x, d, mu, r, instance, gamma)?;
                (Storage::Cuda(dx), dg.map(Storage::Cuda))
            }
            #[cfg(feature = "cuda")]
            _ => return Err(self.device_mismatch(op, mean)),
        };
        Ok((
            Tensor::wrap(dx, x.shape.clone()),
            dgamma.map(|g| Tensor::wrap(g, x.shape.clone())),
        ))
    }

    /// SPADE's normalization, fused: `(x − μ)·rsqrt(σ² + ε)·(1 + γ) + β` for x [N, C, H, W],
    /// with statistics per plane (`instance`) or per channel over N, H and W (batch norm in
    /// training mode), biased variance, and γ, β of x's shape. One statistics pass and one output
    /// pass on either device. Not differentiable by itself (a `Tensor` op): it serves inference
    /// and `create_graph = false`; the composite of mean, var, rsqrt, mul and add is the
    /// twice-differentiable reference it is tested against.
    pub fn spade_norm(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        instance: bool,
        eps: f32,
    ) -> Result<Tensor> {
        let op = "spade_norm";
        self.shape.nchw(op)?;
        for t in [gamma, beta] {
            self.same_device(op, t)?;
            if t.shape != self.shape {
                return Err(Error::mismatch(
                    op,
                    &self.shape,
                    &t.shape,
                    "gamma and beta must have the input's shape",
                ));
            }
        }
        if eps.is_nan() || eps <= 0.0 {
            return Err(Error::invalid(
                op,
                &self.shape,
                format!("eps {eps} must be > 0"),
            ));
        }
        let (mean, rstd) = self.norm_stats(instance, eps)?;
        self.norm_modulate(
            &mean,
            &rstd,
            instance,
            NormModulation::Spatial { gamma, beta },
        )
    }
}
