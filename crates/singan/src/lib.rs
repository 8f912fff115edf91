//! SinGAN: a pyramid of small fully-convolutional GANs learned from one image.
