"""3D geometry shared by the synthetic set, Stage I and the rasteriser: rotations, the pinhole camera and
hand forward kinematics (numpy only)."""
