"""Readers and writers of the motion formats users have: BVH, HumanML3D, AMASS ``.npz``."""
