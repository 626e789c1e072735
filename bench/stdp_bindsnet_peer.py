"""BindsNET's DiehlAndCook2015 trained on given images, timed: the peer of bench/stdp.py.

Runs in BindsNET's own venv (its torch pins clash with ours), so it imports nothing from
snn_agent. Usage: python stdp_bindsnet_peer.py IMAGES.npy N_NEURONS TIMESTEPS
IMAGES.npy: (N, 784) float32 in [0, 1]. Prints one JSON line: images, seconds, images_per_s.
The network and input as in BindsNET's examples/mnist/eth_mnist.py (Poisson input at 128 Hz for a
white pixel, 1 ms steps), one torch thread, learning on.
"""
import json
import sys
import time

import numpy as np
import torch
from bindsnet.encoding import PoissonEncoder
from bindsnet.models import DiehlAndCook2015


def main() -> None:
    images_path, n_neurons, timesteps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    images = torch.from_numpy(np.load(images_path)).float()
    network = DiehlAndCook2015(n_inpt=images.shape[1], n_neurons=n_neurons, exc=22.5, inh=17.5, dt=1.0,
                               norm=78.4, theta_plus=0.05, inpt_shape=(1, 28, 28))
    encode = PoissonEncoder(time=timesteps, dt=1.0)
    # the first image builds torch's caches: not timed
    network.run(inputs={"X": encode(images[0] * 128.0).view(timesteps, 1, 1, 28, 28)}, time=timesteps)
    network.reset_state_variables()
    start = time.perf_counter()
    for image in images:
        spikes = encode(image * 128.0).view(timesteps, 1, 1, 28, 28)
        network.run(inputs={"X": spikes}, time=timesteps)
        network.reset_state_variables()
    seconds = time.perf_counter() - start
    print(json.dumps({"images": len(images), "seconds": seconds, "images_per_s": len(images) / seconds,
                      "bindsnet_torch": torch.__version__}))


if __name__ == "__main__":
    main()
