// The deviation of a committee of models (DeePMD's model_devi), as plain arithmetic: no LAMMPS, no
// torch header, so the pair style and any test harness share one definition (docs/committee.md).
#ifndef SUPERIONIC_COMMITTEE_DEVIATION_H
#define SUPERIONIC_COMMITTEE_DEVIATION_H

#include <cstdint>

namespace superionic {

// forces holds the K members' full force on one atom as [k][3]. Returns
// sigma = sqrt( (1/K) sum_k |F_k - mean_k F_k|^2 ), the population spread (not K-1).
double force_deviation(const double *forces, int members);

// Population standard deviation of `members` values (the spread of the members' total energies).
double population_std(const double *values, int members);

// Running max / min / sum / count of the per-atom sigma on one rank; the pair style reduces the
// four over ranks. An empty summary has max 0 and min +inf, neutral under MPI_MAX / MPI_MIN.
struct DeviationSummary {
  double max = 0.0;
  double min;
  double sum = 0.0;
  int64_t count = 0;
  DeviationSummary();
  void add(double sigma);
};

}  // namespace superionic

#endif
