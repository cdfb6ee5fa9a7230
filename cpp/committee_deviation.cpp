#include "committee_deviation.h"

#include <cmath>
#include <limits>

namespace superionic {

double force_deviation(const double *forces, int members)
{
  if (members <= 0) return 0.0;
  double mean[3] = {0.0, 0.0, 0.0};
  for (int k = 0; k < members; k++)
    for (int c = 0; c < 3; c++) mean[c] += forces[3 * k + c];
  for (int c = 0; c < 3; c++) mean[c] /= members;
  // Two passes: subtracting the mean first keeps the spread exact when forces are large and close.
  double spread = 0.0;
  for (int k = 0; k < members; k++)
    for (int c = 0; c < 3; c++) {
      const double d = forces[3 * k + c] - mean[c];
      spread += d * d;
    }
  return std::sqrt(spread / members);
}

double population_std(const double *values, int members)
{
  if (members <= 0) return 0.0;
  double mean = 0.0;
  for (int k = 0; k < members; k++) mean += values[k];
  mean /= members;
  double spread = 0.0;
  for (int k = 0; k < members; k++) spread += (values[k] - mean) * (values[k] - mean);
  return std::sqrt(spread / members);
}

DeviationSummary::DeviationSummary() : min(std::numeric_limits<double>::infinity()) {}

void DeviationSummary::add(double sigma)
{
  if (sigma > max) max = sigma;
  if (sigma < min) min = sigma;
  sum += sigma;
  count++;
}

}  // namespace superionic
