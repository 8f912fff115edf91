//! SPADE / GauGAN: semantic image synthesis from label maps.
