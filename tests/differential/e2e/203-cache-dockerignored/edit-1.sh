echo more >> build.log
