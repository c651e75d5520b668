// Entry point of the per-layer link checks (cmake/ModaLayers.cmake): the program exists only to be
// linked, with a whole layer archive and the layers below it, so that a wrong-way call fails.
int main() { return 0; }
