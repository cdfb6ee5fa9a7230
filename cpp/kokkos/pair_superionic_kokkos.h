/* pair_style superionic/kk: pair_style superionic with its per-step data in Kokkos views.
   Built as a second plugin (superionickkplugin.so) only against a LAMMPS built with KOKKOS; `-sf kk`
   or `pair_style superionic/kk` selects it.

   Keywords, model loading, the type map and the run checks are pair_style superionic's own (the
   base class). On the Kokkos execution space: the full neighbour list (LAMMPS's Kokkos build), the
   node map (LAMMPS atom -> model node, owned atoms first), the edge list (count, scan, fill), the
   closest-pair check, and the sums of forces, energies and virials (global and per atom) into the
   Kokkos views of atom->f, eatom and vatom; the ghost forces reach their owners through LAMMPS's
   Kokkos reverse communication.

   The model: a sprinter runs on the Kokkos-native kernel (sprinter_kokkos.h: descriptors, MLP, its
   gradient and the force, energy and virial sums in one Kokkos kernel on the execution space, in
   float64 or float32; no libtorch call in the force path) under `backend auto` or `native`. Other
   models, and `backend torch`, go through libtorch (superionic::Model::evaluate, cpp/model.h), which
   reads the edge views and writes its outputs where they are: host memory on a host execution space
   (OpenMP, Serial), the GPU's memory on a GPU space, where it runs on Kokkos's CUDA stream. A sprinter
   too large for the Kokkos kernel's per-thread arrays runs on the CPU kernel (host spaces) or on
   libtorch (GPU). No torch header is included here. */
#ifdef PAIR_CLASS
// clang-format off
PairStyle(superionic/kk,PairSuperionicKokkos<LMPDeviceType>);
// clang-format on
#else

#ifndef LMP_PAIR_SUPERIONIC_KOKKOS_H
#define LMP_PAIR_SUPERIONIC_KOKKOS_H

#include <cstdint>
#include <string>

#include "kokkos_type.h"
#include "pair_kokkos.h"
#include "pair_superionic.h"
#include "sprinter_kokkos.h"

namespace superionic {
struct ArraySpace;
}

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
  // The model call and the sums of its outputs into f, energies and virials. Public only because
  // CUDA forbids device lambdas in private member functions.
  void accumulate(int64_t n_nodes, int64_t n_local, int64_t n_edges);
  // A folded graph (pair_style superionic's one-rank scheme for message passing): ghosts take the
  // node of their owned copy. Public for the same reason.
  void fold_ghosts(int nlocal, int nall);
  // The Kokkos-native sprinter on the owned nodes [0, n_local): forces, energies, virials.
  void run_native(int64_t n_local);
  template <typename Real, class Shape>
  void run_native_as(int64_t n_local, const superionic::kk::Weights<DeviceType, Real> &weights);

 protected:
  std::string resolve_device() override;

 private:
  bool device_given = false;  // the pair_style line names a device
  // The Kokkos-native sprinter: 0 off (libtorch or the CPU kernel), 1 float64, 2 float32 arithmetic.
  int native_kk = 0;
  bool native_default_shape = false;  // the trainer's default sizes: the unrolled instantiation
  bool load_on_host = false;          // GPU space, Kokkos-native model: libtorch reads the file on the host
  superionic::kk::Weights<DeviceType, double> weights64;
  superionic::kk::Weights<DeviceType, float> weights32;

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
  t_int_1d d_node_first, d_node_count;  // Kokkos-native path: each owned node's edges
  t_i64_1d d_edge_src, d_edge_dst;
  t_double_1d_3 d_edge_vec;
  // The native kernel's outputs (host spaces only); the torch path hands out its own.
  t_double_1d_3 d_edge_grad;
  t_double_1d d_atom_energy;
  // Folded graph: the owned atom of each ghost, rebuilt after each neighbour-list build.
  t_int_1d d_ghost_owner;
  bigint ghost_owner_build = -1;

  static superionic::ArraySpace array_space();
  void grow_atoms(int nall, int nsources);
  void grow_edges(int64_t n_edges);
  void report_close_pair(int64_t n_edges);
};

}  // namespace LAMMPS_NS

#endif
#endif
