echo new > d/new
