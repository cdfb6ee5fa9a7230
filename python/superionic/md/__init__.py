"""LAMMPS input generation and the run driver."""
