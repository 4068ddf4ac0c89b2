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

# --- time, frequency and spectroscopy (painn_deploy.spectra) ------------------
# Internal units of the spectra: time in ps, angular frequency in rad/ps, wavenumber in cm^-1,
# dipole in e*nm, polarizability *volume* alpha_SI/(4 pi eps0) in nm^3, mass in amu (g/mol),
# energy in kJ/mol.
#: Vacuum permittivity eps0 in F/m (CODATA 2018; measured, not exact, since the 2019 SI).
VACUUM_PERMITTIVITY_F_PER_M = 8.854_187_8128e-12
PS_PER_FS = 1e-3
FS_PER_PS = 1e3
PS_PER_NS = 1e3
S_PER_PS = 1e-12  # 1 ps in s
M_PER_NM = 1e-9
#: Mass of 1 amu in kg, as 1 g/mol / N_A (the convention behind "1 kJ/mol/(nm^2 amu) = 1 ps^-2";
#: differs from the CODATA dalton by 3.5e-10 relative).
AMU_KG = 1e-3 / AVOGADRO_PER_MOL
#: Density (g/cm^3) of 1 amu per nm^3.
AMU_PER_NM3_TO_G_PER_CM3 = AMU_KG * 1e3 / 1e-21
#: 1 e*nm in C*m.
E_NM_TO_C_M = ELEMENTARY_CHARGE_C * M_PER_NM
#: 1 nm^3 in Angstrom^3 and 1 nm^2 in Angstrom^2.
NM3_TO_ANGSTROM3 = ANGSTROM_PER_NM**3
NM2_TO_ANGSTROM2 = ANGSTROM_PER_NM**2
#: Angular frequency (rad/ps) per wavenumber (cm^-1): omega = 2 pi c nu~.
RAD_PER_PS_PER_CM1 = 1.0 / WAVENUMBER_PER_RAD_PER_PS
#: Energy (kJ/mol) of one wavenumber (cm^-1): h c N_A.
KJ_PER_MOL_PER_CM1 = PLANCK_J_S * SPEED_OF_LIGHT_CM_PER_S * AVOGADRO_PER_MOL / 1e3
#: Bohr radii per nm (the unit of Molden's coordinates).
BOHR_PER_NM = ANGSTROM_PER_NM / BOHR_TO_ANGSTROM
#: Second radiation constant h c / k_B in cm*K: beta*hbar*omega = c2 * nu~[cm^-1] / T[K].
SECOND_RADIATION_CM_K = PLANCK_J_S * SPEED_OF_LIGHT_CM_PER_S / BOLTZMANN_J_PER_K
#: Harmonic IR intensity A = N_A / (12 eps0 c^2) |d mu/dQ|^2 (Q mass-weighted normal coordinate):
#: this converts |d mu/dQ|^2 in e^2/amu to A in km/mol (about 974.88).
IR_KM_PER_MOL_PER_E2_PER_AMU = (
    AVOGADRO_PER_MOL
    * ELEMENTARY_CHARGE_C**2
    / (12.0 * VACUUM_PERMITTIVITY_F_PER_M * SPEED_OF_LIGHT_M_PER_S**2 * AMU_KG)
    / 1e3  # m/mol -> km/mol
)
#: 1 km mol^-1 (cm^-1)^-1 expressed in m^2/mol (1e3 m * 1e-2 m = 10 m^2).
KM_PER_MOL_PER_CM1_IN_M2_PER_MOL = 1e3 * 1e-2
#: 1 kJ/mol expressed in amu * Angstrom^2 / ps^2 (1 kJ/mol = 1 amu nm^2 ps^-2).
KJ_PER_MOL_IN_AMU_A2_PER_PS2 = ANGSTROM_PER_NM**2

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
#: energy/length: every combination of the two tables above (Hartree/Bohr, kcal/mol/Angstrom, ...)
FORCE_TO_EV_PER_ANGSTROM = {
    f"{energy}/{length}": to_ev / to_angstrom
    for energy, to_ev in ENERGY_TO_EV.items()
    for length, to_angstrom in LENGTH_TO_ANGSTROM.items()
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
