"""Pseudo-labels from image-level or crop-level tags (training-time only; nothing here is deployed).

- :mod:`edgeseg.weak.cam`: a CAM classifier (global average pooling + 1×1 classifier, Zhou et al., CVPR 2016)
  on edgeseg's backbones, with one or several dilated blocks;
- :mod:`edgeseg.weak.mdc`: multi-dilated CAM (Wei et al., "Revisiting Dilated Convolution", CVPR 2018);
- :mod:`edgeseg.weak.fickle`: FickleNet's stochastic hidden-unit selection (Lee et al., CVPR 2019);
- :mod:`edgeseg.weak.dsrg`: seeded region growing (Huang et al., DSRG, CVPR 2018) with ConvCRF or the dense CRF;
- :mod:`edgeseg.weak.seeds`: localisation maps to seeds (255 = ignore) and their quality against ground truth;
- :mod:`edgeseg.weak.train`: the tag crops and the short classifier training.

These classifiers are not registered models: they are never exported.
"""
