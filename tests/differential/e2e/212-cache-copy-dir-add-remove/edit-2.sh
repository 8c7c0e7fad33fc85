rm d/new
