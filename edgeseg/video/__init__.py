"""Video for training from cheap labels: synthetic frame sequences with exact motion, optical flow, and the joint
image-label propagation of Zhu et al., "Improving Semantic Segmentation via Video Propagation and Label
Relaxation" (CVPR 2019, arXiv 1812.01593). numpy (and OpenCV for the DIS flow); no torch."""
