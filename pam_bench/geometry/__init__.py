"""3D geometry shared by the synthetic set, Stage I, the datasets and the rasteriser: rotations, the pinhole
camera and hand forward kinematics (numpy only), and MANO (:mod:`.mano`: the one MANO loader and smplx
forward pass, torch and smplx imported only when a hand is posed)."""
