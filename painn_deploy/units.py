"""Physical constants and unit factors, defined once.

Exact SI values (2019 redefinition: h, e, k_B, N_A, c exact; thermochemical
calorie exact).  Every factor below is derived from these, never typed in.

Model units (inside the neural network): Angstrom, eV, e*Angstrom, Angstrom^3.
OpenMM units (the exported artefact):     nm, kJ/mol, e*nm, nm^3, ps, amu.
"""

# --- exact SI defining constants -------------------------------------------
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0
PLANCK_J_S = 6.626_070_15e-34
ELEMENTARY_CHARGE_C = 1.602_176_634e-19
BOLTZMANN_J_PER_K = 1.380_649e-23
AVOGADRO_PER_MOL = 6.022_140_76e23
CALORIE_J = 4.184  # thermochemical calorie, exact by definition

# --- derived -----------------------------------------------------------------
HBAR_J_S = PLANCK_J_S / (2.0 * 3.141592653589793)
ANGSTROM_PER_NM = 10.0
NM_PER_ANGSTROM = 0.1
EV_TO_KJ_PER_MOL = ELEMENTARY_CHARGE_C * AVOGADRO_PER_MOL / 1000.0
KCAL_PER_MOL_TO_KJ_PER_MOL = CALORIE_J
KCAL_PER_MOL_TO_EV = KCAL_PER_MOL_TO_KJ_PER_MOL / EV_TO_KJ_PER_MOL
HARTREE_TO_EV = 27.211_386_245_988  # CODATA 2018 (not exact)
BOHR_TO_ANGSTROM = 0.529_177_210_903  # CODATA 2018 (not exact)
DEBYE_TO_E_ANGSTROM = 1e-21 / SPEED_OF_LIGHT_M_PER_S / ELEMENTARY_CHARGE_C * 1e10
BOLTZMANN_KJ_PER_MOL_K = BOLTZMANN_J_PER_K * AVOGADRO_PER_MOL / 1000.0
HBAR_KJ_PER_MOL_PS = HBAR_J_S * AVOGADRO_PER_MOL / 1000.0 * 1e12  # (kJ/mol) * ps
SPEED_OF_LIGHT_CM_PER_PS = SPEED_OF_LIGHT_M_PER_S * 100.0 * 1e-12
SPEED_OF_LIGHT_CM_PER_S = SPEED_OF_LIGHT_M_PER_S * 100.0
# sqrt(kJ/mol / (nm^2 amu)) is an angular frequency in 1/ps:
# 1 kJ/mol/(nm^2 g/mol) = 1e3 J / (1e-18 m^2 * 1e-3 kg) = 1e24 s^-2 = 1 ps^-2.
# Wavenumber (cm^-1) of an angular frequency omega (1/ps): omega / (2 pi c[cm/ps]).
WAVENUMBER_PER_RAD_PER_PS = 1.0 / (2.0 * 3.141592653589793 * SPEED_OF_LIGHT_CM_PER_PS)

# --- model <-> OpenMM boundary factors ----------------------------------------
# multiply a model-unit value by these to get the OpenMM-unit value
MODEL_TO_OPENMM = {
    "length": NM_PER_ANGSTROM,  # Angstrom -> nm
    "energy": EV_TO_KJ_PER_MOL,  # eV -> kJ/mol
    "forces": EV_TO_KJ_PER_MOL * ANGSTROM_PER_NM,  # eV/A -> kJ/mol/nm
    "dipole": NM_PER_ANGSTROM,  # e*A -> e*nm
    "polarizability": NM_PER_ANGSTROM**3,  # A^3 -> nm^3
}

MODEL_UNITS = {
    "length": "Angstrom",
    "energy": "eV",
    "forces": "eV/Angstrom",
    "dipole": "e*Angstrom",
    "polarizability": "Angstrom^3",
}
OPENMM_UNITS = {
    "length": "nm",
    "energy": "kJ/mol",
    "forces": "kJ/mol/nm",
    "dipole": "e*nm",
    "polarizability": "nm^3",
}

# --- file units accepted at data ingestion -> model units -----------------------
LENGTH_TO_ANGSTROM = {"Angstrom": 1.0, "nm": ANGSTROM_PER_NM, "Bohr": BOHR_TO_ANGSTROM}
ENERGY_TO_EV = {
    "eV": 1.0,
    "kcal/mol": KCAL_PER_MOL_TO_EV,
    "kJ/mol": 1.0 / EV_TO_KJ_PER_MOL,
    "Hartree": HARTREE_TO_EV,
}
DIPOLE_TO_E_ANGSTROM = {
    "e*Angstrom": 1.0,
    "e*nm": ANGSTROM_PER_NM,
    "e*Bohr": BOHR_TO_ANGSTROM,
    "Debye": DEBYE_TO_E_ANGSTROM,
}
POLARIZABILITY_TO_ANGSTROM3 = {
    "Angstrom^3": 1.0,
    "nm^3": ANGSTROM_PER_NM**3,
    "Bohr^3": BOHR_TO_ANGSTROM**3,
}
