/* pair_style superionic/kk: pair_style superionic with its per-step data in Kokkos views.
   Built as a second plugin (superionickkplugin.so) only against a LAMMPS built with KOKKOS; `-sf kk`
   or `pair_style superionic/kk` selects it.

   On the Kokkos execution space: the full neighbour list (LAMMPS's Kokkos build), the node map
   (LAMMPS atom -> model node, local atoms first), the edge list (count, scan, fill), the closest-pair
   check, and the accumulation of forces, energies and virials (global and per atom) into the Kokkos
   views of atom->f, eatom and vatom; the ghost forces reach their owners through LAMMPS's Kokkos
   reverse communication. The model call itself (superionic::Model or the native kernel, through
   cpp/model.h) receives host pointers: on a host execution space (OpenMP, Serial) these are the
   views' own memory, with no copy; on a GPU space the edge list and the model outputs are copied
   between the views and their host mirrors. */
#ifdef PAIR_CLASS
// clang-format off
PairStyle(superionic/kk,PairSuperionicKokkos<LMPDeviceType>);
// clang-format on
#else

#ifndef LMP_PAIR_SUPERIONIC_KOKKOS_H
#define LMP_PAIR_SUPERIONIC_KOKKOS_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kokkos_type.h"
#include "pair_kokkos.h"
#include "pair_superionic.h"

namespace superionic {
class Model;
class SprinterKernel;
}  // namespace superionic

namespace LAMMPS_NS {

template <class DeviceType>
class PairSuperionicKokkos : public PairSuperionic {
 public:
  typedef DeviceType device_type;
  typedef ArrayTypes<DeviceType> AT;

  PairSuperionicKokkos(class LAMMPS *);
  ~PairSuperionicKokkos() override;
  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  // The model call and the sums of its outputs into f, energies and virials. Public only because
  // CUDA forbids device lambdas in private member functions.
  void accumulate(int64_t n_nodes, int64_t n_local, int64_t n_edges);

 private:
  // Own copies of what the base class keeps private; the base's settings() still validates
  // every keyword, so the two styles accept the same lines.
  std::unique_ptr<superionic::Model> model;
  superionic::SprinterKernel *kernel = nullptr;  // owned by model; null: the torch path
  std::string kk_device = "cpu";
  std::string kk_backend = "auto";
  std::string kk_precision = "model";
  int kk_gpus_per_node = 0;
  bool kk_allow_oversubscribe = false;
  int kk_threads = 0;
  double kk_cutoff = 0.0;
  double kk_receptive_field = 0.0;
  bool kk_message_passing = false;

  typedef Kokkos::View<int *, DeviceType> t_int_1d;
  typedef Kokkos::View<int64_t *, DeviceType> t_i64_1d;
  typedef Kokkos::View<double *, DeviceType> t_double_1d;
  typedef Kokkos::View<double *[3], Kokkos::LayoutRight, DeviceType> t_double_1d_3;

  DAT::ttransform_kkacc_1d k_eatom;
  DAT::ttransform_kkacc_1d_6 k_vatom;

  t_int_1d d_type_species;  // [ntypes + 1]: model species index, -1 for NULL
  // Per step, sized by local + ghost atoms and by edges; grown, never shrunk.
  t_i64_1d d_node_of_atom, d_atom_of_node, d_species;
  t_int_1d d_edge_count, d_edge_offset;
  t_i64_1d d_edge_src, d_edge_dst;
  t_double_1d_3 d_edge_vec, d_edge_grad;
  t_double_1d d_atom_energy;

  std::string resolve_device();
  void grow_atoms(int nall, int nsources);
  void grow_edges(int64_t n_edges);
  void report_close_pair(int64_t n_edges, int nlocal);
};

}  // namespace LAMMPS_NS

#endif
#endif
