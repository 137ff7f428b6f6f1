"""The model packages (workers.unet, workers.maskrcnn, workers.identity), each describing itself once in its
`PACKAGE` (a streamer.models.ModelPackage), from which the registry and the CLI's subcommands are built."""
